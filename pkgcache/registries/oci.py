"""The OCI front: a container registry's API (the OCI distribution
specification) under ``/v2/<repository>/``.

- ``/v2/<repository>/<image>/blobs/<algorithm>:<hex>``: a layer or a
  config, immutable, stored once per repository whatever image names it
  (``v2/<repository>/blobs/<algorithm>/<hex>``) and checked against the
  digest in its name before it is published (``digests/learnt.from_path``).
- ``.../manifests/<algorithm>:<hex>``: a manifest by digest, immutable and
  checked the same way, stored once per repository
  (``v2/<repository>/manifests/<algorithm>/<hex>``); a document (clients
  wait for it whole), answered with the upstream's ``Content-Type`` and
  its ``Docker-Content-Digest``.
- ``.../manifests/<tag>``: volatile. Each set of manifest types a client
  accepts is its own variant (``<image>/manifests/<tag>/<variant>``): a
  registry answers an index to a client that accepts one and a single
  manifest to one that does not, and refuses an OCI manifest to a client
  that does not accept OCI types. The variant's Accept goes upstream; it
  is revalidated after ``fresh_for`` with a HEAD comparing
  ``Docker-Content-Digest`` (``FetchPlan.revalidate_by_head``).
- ``.../tags/list``: passed through with its query, never stored.

Docker Hub's one-segment names get their implicit ``library/``. The
sources' credentials (``user:password@`` or the ``username`` and
``password`` keys) go to the token service only (``ocitokens.py``).
``namespaced`` gives ``/v2/<image>/...`` its repository when containerd
names the registry host (``?ns=``) or a repository is ``default``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping

from pkgcache.fetching.upstream import Route
from pkgcache.registries.ocitokens import RegistryTokens, TokenFetch
from pkgcache.registries.targets import Document, Refusal, Resolution, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.store.meta import Validators
from pkgcache.store.paths import CacheKey, RequestPath

#: The manifest types a client may accept, and the short names of the
#: stored variants.
MANIFEST_TYPES = {
    "application/vnd.oci.image.index.v1+json": "oci-index",
    "application/vnd.oci.image.manifest.v1+json": "oci-manifest",
    "application/vnd.docker.distribution.manifest.list.v2+json": "docker-list",
    "application/vnd.docker.distribution.manifest.v2+json": "docker-v2",
}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: A manifest by digest is the same bytes whatever the client accepts.
_EVERY_MANIFEST = ", ".join(MANIFEST_TYPES)
_DOCKER_HUB = ("registry-1.docker.io", "index.docker.io", "docker.io")

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"(sha256):([a-f0-9]{64})|(sha512):([a-f0-9]{128})")


class OciFront:
    """Resolves registry API paths; keeps each repository's tokens."""

    def __init__(self, fetch_token: TokenFetch | None) -> None:
        """``fetch_token(url, headers)``: a small GET for the token
        service; None: challenges are not answered (tests of routing)."""
        self.fetch_token = fetch_token
        self._authorizers: dict[str, tuple[object, RegistryTokens]] = {}

    def authorizer(self, repository: Repository) -> RegistryTokens | None:
        """The repository's tokens, kept across requests and remade when
        its sources or credentials change."""
        if self.fetch_token is None:
            return None
        settings = repository.settings
        username, password = credentials(settings.sources)
        if settings.username is not None:
            username, password = settings.username, settings.password
        identity = (settings.sources, username, password)
        kept = self._authorizers.get(settings.name)
        if kept is None or kept[0] != identity:
            kept = (identity, RegistryTokens(self.fetch_token, username, password))
            self._authorizers[settings.name] = kept
        return kept[1]

    def resolve(
        self,
        repository: Repository,
        path: RequestPath,
        headers: Mapping[str, str],
        query: str,
    ) -> Resolution:
        prefix = repository.prefix
        below = path.segments[len(prefix) :]
        if path.folder or len(below) < 3:
            return Refusal(404, "not a registry path")
        image, what, reference = below[:-2], below[-2], below[-1]
        if below[-2:] == ("tags", "list"):
            image, what = below[:-2], "tags"
        if not all(_COMPONENT.fullmatch(part) for part in image):
            return Refusal(404, "not an image name")
        sources = tuple(without_credentials(source) for source in repository.sources)
        upstream_image = "/".join(_upstream_image(sources, image))
        auth = self.authorizer(repository)
        if what == "tags":
            return Target(
                CacheKey((*path.segments[:-1], "list")),
                Policy.PASS,
                Route(sources, f"/v2/{upstream_image}/tags/list{query}", auth=auth),
                private=True,
                upstream_type=True,
            )
        digest = _DIGEST.fullmatch(reference)
        if what == "blobs":
            if digest is None:
                return Refusal(404, "a blob is named by its digest")
            algorithm, value = [part for part in digest.groups() if part]
            return Target(
                CacheKey((*prefix, "blobs", algorithm, value)),
                Policy.IMMUTABLE,
                Route(sources, f"/v2/{upstream_image}/blobs/{reference}", auth=auth),
            )
        if what != "manifests":
            return Refusal(404, "not a registry path")
        upstream_path = f"/v2/{upstream_image}/manifests/{reference}"
        if digest is not None:
            algorithm, value = [part for part in digest.groups() if part]
            return Target(
                CacheKey((*prefix, "manifests", algorithm, value)),
                Policy.IMMUTABLE,
                Route(sources, upstream_path, auth=auth),
                _manifest_document("digest", _EVERY_MANIFEST, reference, ()),
            )
        if not _TAG.fullmatch(reference):
            return Refusal(404, "not a tag or a digest")
        variant, accept = _variant(headers.get("Accept"))
        return Target(
            CacheKey((*prefix, *image, "manifests", reference, variant)),
            Policy.VOLATILE,
            Route(sources, upstream_path, auth=auth),
            _manifest_document(variant, accept, None, (*prefix, "manifests")),
        )


def _manifest_document(
    variant: str, accept: str, digest: str | None, digest_folder: tuple[str, ...]
) -> Document:
    """A manifest as a document: fetched with ``accept``, answered with
    the upstream's type and its digest (``digest``, or the one recorded
    for the stored tag); a tag's is linked by its digest in
    ``digest_folder`` too, where a pull by digest finds it."""

    def content_type(upstream: str | None) -> str:
        return upstream or DOCKER_MANIFEST

    def digest_header(stored: Validators | None) -> dict[str, str]:
        known = digest or (stored.content_digest if stored else None)
        return {"Docker-Content-Digest": known} if known else {}

    return Document(
        "oci-" + variant,
        (("Accept", accept),) if accept else (),
        content_type,
        headers_of=digest_header,
        revalidate_by_head=digest is None,
        digest_folder=digest_folder,
    )


def _variant(accept: str | None) -> tuple[str, str]:
    """The stored variant for a client's Accept (the manifest types it
    names, weight above 0) and the Accept sent upstream for it."""
    named = []
    for item in (accept or "").split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        refused = any(
            parameter.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000")
            for parameter in parameters
        )
        if media.lower() in MANIFEST_TYPES and not refused:
            named.append(media.lower())
    types = [media for media in MANIFEST_TYPES if media in named]
    if not types:
        return "any", ""
    return "+".join(MANIFEST_TYPES[media] for media in types), ", ".join(types)


def _upstream_image(
    sources: tuple[str, ...], image: tuple[str, ...]
) -> tuple[str, ...]:
    """Docker Hub's official images are ``library/<name>``."""
    hub = any(
        urllib.parse.urlsplit(source).hostname in _DOCKER_HUB for source in sources
    )
    return ("library", *image) if hub and len(image) == 1 else image


def credentials(sources: Iterable[str]) -> tuple[str | None, str | None]:
    """The first ``user:password@`` among the sources, decoded."""
    for source in sources:
        parts = urllib.parse.urlsplit(source)
        if parts.username is not None:
            return (
                urllib.parse.unquote(parts.username),
                urllib.parse.unquote(parts.password or ""),
            )
    return None, None


def without_credentials(source: str) -> str:
    """``source`` without its ``user:password@``: the registry itself gets
    tokens, never the password."""
    parts = urllib.parse.urlsplit(source)
    if "@" not in parts.netloc:
        return source
    return urllib.parse.urlunsplit(
        parts._replace(netloc=parts.netloc.rpartition("@")[2])
    )


def namespaced(
    path: RequestPath, query: str, repositories: Iterable[Repository]
) -> RequestPath:
    """``/v2/<image>/...`` with the repository it belongs to put in:
    the one whose ``hosts`` holds ``?ns=`` (containerd), else the
    ``default`` one (dockerd's mirrors). A path that names an oci
    repository already, or no repository, is left as it is."""
    segments = path.segments
    if len(segments) < 2 or segments[0] != "v2":
        return path
    oci = [repo for repo in repositories if repo.settings.kind == "oci"]
    if any(repo.prefix == segments[:2] for repo in oci):
        return path
    hosts = urllib.parse.parse_qs(query.lstrip("?")).get("ns", [])
    if hosts:
        host = hosts[0].lower()
        chosen = next((repo for repo in oci if host in repo.settings.hosts), None)
    else:
        chosen = next((repo for repo in oci if repo.settings.default), None)
    if chosen is None:
        return path
    return RequestPath((*chosen.prefix, *segments[1:]), path.folder)


#: OCI error codes by our status and what the path names.
def error_document(status: int, message: str, path: str) -> str:
    """An error as the distribution specification shapes it:
    ``{"errors": [{"code": ..., "message": ..., "detail": ...}]}``."""
    if status == 404:
        code = (
            "MANIFEST_UNKNOWN"
            if "/manifests/" in path
            else "BLOB_UNKNOWN"
            if "/blobs/" in path
            else "NAME_UNKNOWN"
        )
    elif status == 405:
        code = "UNSUPPORTED"
        message = "package-cache is a read-only mirror: push to the registry itself"
    elif status == 403:
        code = "DENIED"
    elif status == 401:
        code = "UNAUTHORIZED"
    elif status == 400:
        code = "NAME_INVALID"
    elif status == 429:
        code = "TOOMANYREQUESTS"
    else:
        code = "UNAVAILABLE" if status >= 500 else "UNKNOWN"
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
