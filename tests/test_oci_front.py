"""The OCI front and its tokens in one process: variants by Accept,
namespaces by ``?ns=`` and ``default``, what each path is stored as, and
the token cache (one request per scope, however many ask at once; a new
one once it expired)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pkgcache.fetching.auth import SmallResponse
from pkgcache.registries.oci import OciFront, _variant, namespaced
from pkgcache.registries.ocitokens import RegistryTokens, parse_challenge
from pkgcache.registries.targets import Refusal, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.settings import RepositorySettings
from pkgcache.store.paths import RequestPath, request_path

HEX = "ab" * 32


def repository(name: str, source: str, **settings: object) -> Repository:
    return Repository.of(
        RepositorySettings(
            name=name,
            prefix=f"/v2/{name}/",
            sources=(source,),
            kind="oci",
            **settings,  # type: ignore[arg-type]
        )
    )


HUB = repository(
    "hub", "https://me:pw@registry-1.docker.io", hosts=("docker.io",), default=True
)
QUAY = repository("quay", "https://quay.io", hosts=("quay.io",))


def resolve(path: str, accept: str = "") -> Target | Refusal:
    front = OciFront(None)
    found = front.resolve(HUB, request_path(path), {"Accept": accept}, "")
    return found  # type: ignore[return-value]


def test_every_manifest_type_set_is_a_variant_of_its_own():
    both = _variant(
        "application/vnd.oci.image.index.v1+json,"
        " application/vnd.docker.distribution.manifest.v2+json;q=0.5"
    )
    assert both == (
        "oci-index+docker-v2",
        "application/vnd.oci.image.index.v1+json,"
        " application/vnd.docker.distribution.manifest.v2+json",
    )
    refused = _variant("application/vnd.oci.image.index.v1+json;q=0")
    assert refused == ("any", "")


def test_blobs_and_digests_are_stored_once_per_repository_and_tags_per_variant():
    blob = resolve(f"/v2/hub/alpine/blobs/sha256:{HEX}")
    assert isinstance(blob, Target) and blob.policy is Policy.IMMUTABLE
    assert blob.key.relative == f"v2/hub/blobs/sha256/{HEX}"
    # Docker Hub's official images are library/<name>; the password is
    # for the token service, never in the URL asked.
    assert blob.route.targets() == [
        ("https://registry-1.docker.io", f"/v2/library/alpine/blobs/sha256:{HEX}")
    ]
    by_digest = resolve(f"/v2/hub/alpine/manifests/sha256:{HEX}")
    assert isinstance(by_digest, Target)
    assert by_digest.key.relative == f"v2/hub/manifests/sha256/{HEX}"
    tag = resolve(
        "/v2/hub/library/alpine/manifests/3.20",
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert isinstance(tag, Target) and tag.policy is Policy.VOLATILE
    assert tag.key.relative == "v2/hub/library/alpine/manifests/3.20/oci-manifest"
    assert tag.document is not None and tag.document.revalidate_by_head
    assert isinstance(resolve("/v2/hub/alpine/blobs/latest"), Refusal)
    assert isinstance(resolve("/v2/hub/Alpine/manifests/1"), Refusal)


def test_ns_names_a_repository_by_host_and_default_takes_the_rest():
    path = RequestPath(("v2", "library", "alpine", "manifests", "1"), False)
    repos = [HUB, QUAY]
    assert namespaced(path, "?ns=quay.io", repos).segments[:2] == ("v2", "quay")
    assert namespaced(path, "", repos).segments[:2] == ("v2", "hub")
    assert namespaced(path, "?ns=ghcr.io", repos) == path
    named = RequestPath(("v2", "quay", "x", "manifests", "1"), False)
    assert namespaced(named, "?ns=docker.io", repos) == named


def test_a_challenge_is_parsed_as_docker_hub_sends_it():
    scheme, parameters = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert scheme == "bearer"
    assert parameters["scope"] == "repository:library/alpine:pull"


def test_concurrent_challenges_make_one_token_request_until_it_expires():
    asked: list[str] = []
    now = [100.0]

    async def fetch(url: str, headers: Mapping[str, str]) -> SmallResponse:
        asked.append(url)
        await asyncio.sleep(0.01)
        return SmallResponse(200, {}, b'{"token": "t1", "expires_in": 60}')

    tokens = RegistryTokens(fetch, monotonic=lambda: now[0])
    url = "https://r.example/v2/library/alpine/manifests/1"
    challenge = 'Bearer realm="https://auth.example/token",service="r"'

    async def main() -> list[bool]:
        return await asyncio.gather(
            *(tokens.challenged(url, challenge) for _ in range(20))
        )

    assert asyncio.run(main()) == [True] * 20
    assert asked == [
        "https://auth.example/token?service=r&scope=repository%3Alibrary%2Falpine%3Apull"
    ]
    blob = "https://r.example/v2/library/alpine/blobs/sha256:" + HEX
    assert tokens.headers(blob) == {"Authorization": "Bearer t1"}
    now[0] += 61
    assert tokens.headers(blob) == {}
    assert asyncio.run(tokens.challenged(url, challenge))
    assert len(asked) == 2
