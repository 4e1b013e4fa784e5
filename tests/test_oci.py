"""Container images through the cache (``kind = "oci"``), end to end:
Debian's docker-registry as the origin, images made here as OCI layouts
and pushed with skopeo, pulled through the cache with skopeo and plain
HTTP clients; a gate in front of the registry counts what reaches it and,
for the private repository, asks for tokens as Docker Hub does."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pkgcache import config
from pkgcache.configvalues import ConfigError
from tests.conftest import Proxy
from tests.ociregistry import (
    ACCEPT_ALL,
    DistributionRegistry,
    Image,
    Layout,
    RegistryGate,
    Skopeo,
    digest_of,
    layer,
)

pytestmark = pytest.mark.skipif(
    not (shutil.which("skopeo") and shutil.which("docker-registry")),
    reason="needs skopeo and docker-registry",
)

GATE_USER = "gate-user"
GATE_PASSWORD = "gate-s3cret-pw"


class World:
    """The registry, its images and the gates in front of it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.registry = DistributionRegistry(tmp / "registry").start()
        self.skopeo = Skopeo(tmp / "skopeo")
        self.layout = Layout(tmp / "layout")
        self.images: dict[str, Image] = {}
        big = os.urandom(600_000)
        self.add("app", [layer({"a.txt": b"alpha\n" * 100}), layer({"big": big})])
        self.add("moving", [layer({"v": b"one\n"})])
        self.add("corrupt", [layer({"c": os.urandom(50_000)})])
        self.add("resume", [layer({"r": os.urandom(400_000)})])
        self.add("crowd", [layer({f"f{i}": os.urandom(20_000)}) for i in range(3)])
        index = self.layout.index(
            {
                "linux/amd64": [layer({"amd": b"amd64\n"})],
                "linux/arm64": [layer({"arm": b"arm64\n"})],
            }
        )
        self.layout.tag("multi", index)
        self.skopeo.push(
            self.layout.folder, "multi", f"{self.registry.host}/library/multi:1", True
        )
        self.images["multi"] = index
        # Stored wrong in the origin's own storage: it serves the bad bytes.
        bad = self.images["corrupt"].layer_digests()[0]
        path = self.registry.blob_file(bad)
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        path.write_bytes(bytes(data))
        self.gate = RegistryGate(self.registry.url).start()
        self.token_gate = RegistryGate(
            self.registry.url, GATE_USER, GATE_PASSWORD, redirect_blobs=True
        ).start()

    def add(self, name: str, layers: list[bytes]) -> Image:
        image = self.layout.manifest(layers)
        self.layout.tag(name, image)
        self.skopeo.push(
            self.layout.folder, name, f"{self.registry.host}/library/{name}:1"
        )
        self.images[name] = image
        return image

    def repositories(self, **hub: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "hub",
                "kind": "oci",
                "sources": [self.gate.url],
                "fresh_for": "5m",
                "hosts": ["docker.io"],
                "default": True,
                **hub,
            },
            {
                "name": "private",
                "kind": "oci",
                "sources": [self.token_gate.url],
                "username": GATE_USER,
                "password": GATE_PASSWORD,
            },
        ]

    def stop(self) -> None:
        self.gate.stop()
        self.token_gate.stop()
        self.registry.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    made = World(tmp_path_factory.mktemp("oci"))
    yield made
    made.stop()


@pytest.fixture
def cache(world: World, make_proxy: Any) -> Proxy:
    world.gate.reset()
    world.token_gate.reset()
    return make_proxy([], repository=world.repositories())


def manifest(proxy: Proxy, path: str, **headers: str) -> Any:
    return proxy.request(path, headers={"Accept": ACCEPT_ALL, **headers})


def pulled_blobs(folder: Path) -> dict[str, bytes]:
    """A ``dir:`` copy's files, by digest (skopeo names them by hex)."""
    return {
        "sha256:" + path.name: path.read_bytes()
        for path in folder.iterdir()
        if len(path.name) == 64
    }


def test_a_pull_gives_identical_blobs_and_a_second_pull_asks_nobody(
    world: World, cache: Proxy, tmp_path: Path
):
    image = world.images["app"]
    first = world.skopeo.pull(
        f"127.0.0.1:{cache.port}/hub/library/app:1", f"dir:{tmp_path / 'a'}"
    )
    assert first.returncode == 0, first.stderr
    blobs = pulled_blobs(tmp_path / "a")
    for digest, data in image.blobs.items():
        assert blobs[digest] == data
    assert (tmp_path / "a" / "manifest.json").read_bytes() == image.manifest
    # Stored once per repository, at a readable place.
    for digest in image.blobs:
        stored = cache.cached(f"v2/hub/blobs/sha256/{digest.split(':')[1]}")
        assert stored.read_bytes() == image.blobs[digest]
    # The tag's manifest is also kept under its digest.
    by_digest = cache.cached(f"v2/hub/manifests/sha256/{image.digest.split(':')[1]}")
    assert by_digest.read_bytes() == image.manifest
    world.gate.reset()
    again = world.skopeo.pull(
        f"127.0.0.1:{cache.port}/hub/library/app:1", f"dir:{tmp_path / 'b'}"
    )
    assert again.returncode == 0, again.stderr
    assert pulled_blobs(tmp_path / "b") == blobs
    assert world.gate.log == []


def test_a_multi_platform_index_is_pulled_whole_and_served_as_the_upstream_sent_it(
    world: World, cache: Proxy, tmp_path: Path
):
    index = world.images["multi"]
    copied = world.skopeo.pull(
        f"127.0.0.1:{cache.port}/hub/library/multi:1",
        f"oci:{tmp_path / 'm'}:1",
        "--all",
    )
    assert copied.returncode == 0, copied.stderr
    blobs = tmp_path / "m" / "blobs" / "sha256"
    for digest, data in index.blobs.items():
        assert (blobs / digest.split(":")[1]).read_bytes() == data
    answer = manifest(cache, "/v2/hub/library/multi/manifests/1")
    assert answer.status == 200
    assert answer.body == index.manifest
    assert answer.headers["Content-Type"] == index.media_type
    assert answer.headers["Docker-Content-Digest"] == index.digest
    child = index.children["linux/arm64"]
    by_digest = manifest(cache, f"/v2/hub/library/multi/manifests/{digest_of(child)}")
    assert by_digest.body == child
    assert by_digest.headers["Docker-Content-Digest"] == digest_of(child)
    inspected = world.skopeo.run(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        f"docker://127.0.0.1:{cache.port}/hub/library/multi:1",
    )
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.encode() == index.manifest
    # A client that accepts no index gets the registry's answer to that,
    # stored as a variant of its own.
    single = cache.request(
        "/v2/hub/library/app/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert single.status == 200 and single.body == world.images["app"].manifest


def test_a_moved_tag_is_seen_after_fresh_for_with_one_head_and_one_get(
    world: World, cache: Proxy
):
    path = "/v2/hub/library/moving/manifests/1"
    before = manifest(cache, path)
    assert before.status == 200
    first = before.headers["Docker-Content-Digest"]
    moved = world.add("moving", [layer({"v": b"two\n"})])
    world.gate.reset()
    assert manifest(cache, path).headers["Docker-Content-Digest"] == first
    assert world.gate.log == []
    cache.advance(301)
    after = manifest(cache, path)
    assert (
        after.headers["Docker-Content-Digest"] == moved.digest == digest_of(after.body)
    )
    assert world.gate.count("HEAD", "/manifests/1") == 1
    assert world.gate.count("GET", "/manifests/1") == 1
    world.gate.reset()
    cache.advance(301)
    same = manifest(cache, path)
    assert same.body == moved.manifest
    assert same.headers["X-Package-Cache"] == "revalidated"
    assert world.gate.log == [("HEAD", "/v2/library/moving/manifests/1")]


def test_with_the_origin_gone_a_tag_is_served_stale_and_a_digest_as_stored(
    world: World, make_proxy: Any, tmp_path: Path
):
    gate = RegistryGate(world.registry.url).start()
    proxy = make_proxy(
        [],
        repository=[
            {"name": "hub", "kind": "oci", "sources": [gate.url], "fresh_for": "5m"}
        ],
    )
    image = world.images["app"]
    name = f"127.0.0.1:{proxy.port}/hub/library/app"
    assert world.skopeo.pull(f"{name}:1", f"dir:{tmp_path / 'a'}").returncode == 0
    gate.stop()
    proxy.advance(600)
    tag = manifest(proxy, "/v2/hub/library/app/manifests/1")
    assert tag.status == 200 and tag.body == image.manifest
    assert tag.headers["X-Package-Cache"] == "stale"
    by_tag = world.skopeo.pull(f"{name}:1", f"dir:{tmp_path / 'b'}")
    assert by_tag.returncode == 0, by_tag.stderr
    by_digest = world.skopeo.pull(f"{name}@{image.digest}", f"dir:{tmp_path / 'c'}")
    assert by_digest.returncode == 0, by_digest.stderr
    assert pulled_blobs(tmp_path / "c") == pulled_blobs(tmp_path / "a")


def test_a_corrupted_blob_upstream_is_never_stored(
    world: World, cache: Proxy, tmp_path: Path
):
    bad = world.images["corrupt"].layer_digests()[0]
    answer = None
    with contextlib.suppress(http.client.IncompleteRead, ConnectionError):
        answer = cache.request(f"/v2/hub/library/corrupt/blobs/{bad}")
    assert answer is None or answer.status != 200 or digest_of(answer.body) != bad
    assert not cache.cached(f"v2/hub/blobs/sha256/{bad.split(':')[1]}").exists()
    pulled = world.skopeo.pull(
        f"127.0.0.1:{cache.port}/hub/library/corrupt:1", f"dir:{tmp_path / 'x'}"
    )
    assert pulled.returncode != 0
    assert "digest mismatch" in cache.log()


def test_twenty_concurrent_pulls_make_one_get_per_blob_and_one_token_request(
    world: World, cache: Proxy, tmp_path: Path
):
    image = world.images["crowd"]
    results: list[bool] = []

    def pull() -> None:
        answer = manifest(cache, "/v2/private/library/crowd/manifests/1")
        ok = answer.status == 200 and answer.body == image.manifest
        for digest, data in image.blobs.items():
            blob = cache.request(f"/v2/private/library/crowd/blobs/{digest}")
            ok = ok and blob.status == 200 and blob.body == data
        results.append(ok)

    threads = [threading.Thread(target=pull) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [True] * 20
    gate = world.token_gate
    assert gate.token_requests == 1
    assert gate.count("GET", "/manifests/1") == 2  # challenged, then with the token
    for digest in image.blobs:
        # Redirected to the "CDN" as Docker Hub does: one fetch of each.
        assert gate.count("GET", f"/cdn/v2/library/crowd/blobs/{digest}") == 1
    skopeo = world.skopeo.pull(
        f"127.0.0.1:{cache.port}/private/library/crowd:1", f"dir:{tmp_path / 'p'}"
    )
    assert skopeo.returncode == 0, skopeo.stderr
    assert gate.token_requests == 1


def test_a_blob_broken_upstream_is_resumed_and_ranges_are_served(
    world: World, cache: Proxy
):
    digest = world.images["resume"].layer_digests()[0]
    data = world.images["resume"].blobs[digest]
    world.gate.cut_once.add(digest)
    whole = cache.request(f"/v2/hub/library/resume/blobs/{digest}")
    assert whole.status == 200 and whole.body == data
    assert ("GET", f"/v2/library/resume/blobs/{digest}") in world.gate.log
    assert world.gate.count("GET", digest) == 2  # the cut one and the Range one
    assert "resuming" in cache.log()
    part = cache.request(
        f"/v2/hub/library/resume/blobs/{digest}", headers={"Range": "bytes=1000-"}
    )
    assert part.status == 206 and part.body == data[1000:]


def test_credentials_and_tokens_never_appear_in_logs_status_or_metrics(
    world: World, cache: Proxy
):
    image = world.images["app"]
    assert manifest(cache, "/v2/private/library/app/manifests/1").status == 200
    for digest in image.blobs:
        assert cache.request(f"/v2/private/library/app/blobs/{digest}").status == 200
    assert world.token_gate.token_requests == 1
    shown = cache.log()
    for page in ("status", "status.json", "metrics"):
        shown += cache.request(f"/.pkgcache/{page}").body.decode()
    assert GATE_PASSWORD not in shown
    assert world.token_gate.tokens
    for token in world.token_gate.tokens:
        assert token not in shown


def test_basic_challenges_are_answered_and_refused_credentials_are_a_clear_502(
    world: World, make_proxy: Any
):
    basic = RegistryGate(
        world.registry.url, GATE_USER, GATE_PASSWORD, basic=True
    ).start()
    try:
        wrong = {**world.repositories()[1], "name": "wrong", "password": "nope"}
        proxy = make_proxy(
            [],
            repository=[
                {**world.repositories()[1], "sources": [basic.url]},
                wrong,
            ],
        )
        good = manifest(proxy, "/v2/private/library/app/manifests/1")
        assert good.status == 200 and good.body == world.images["app"].manifest
        refused = manifest(proxy, "/v2/wrong/library/app/manifests/1")
        assert refused.status == 502
        error = json.loads(refused.body)["errors"][0]
        assert "HTTP 401" in error["message"]
        assert "nope" not in proxy.log() and GATE_PASSWORD not in proxy.log()
    finally:
        basic.stop()


def test_namespaces_by_ns_and_default_push_refused_and_errors_in_the_oci_shape(
    world: World, cache: Proxy
):
    image = world.images["app"]
    base = cache.request("/v2/")
    assert base.status == 200
    assert base.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    by_ns = manifest(cache, "/v2/library/app/manifests/1?ns=docker.io")
    assert by_ns.status == 200 and by_ns.body == image.manifest
    by_default = manifest(cache, "/v2/library/app/manifests/1")
    assert by_default.body == image.manifest
    elsewhere = manifest(cache, "/v2/library/app/manifests/1?ns=quay.io")
    assert elsewhere.status == 404
    missing = manifest(cache, "/v2/hub/library/app/manifests/nope")
    assert missing.status == 404
    assert json.loads(missing.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    push = cache.request("/v2/hub/library/app/blobs/uploads/", method="POST")
    assert push.status == 405
    assert json.loads(push.body)["errors"][0]["code"] == "UNSUPPORTED"
    tags = cache.request("/v2/hub/library/app/tags/list")
    assert tags.status == 200 and json.loads(tags.body)["tags"] == ["1"]


def test_a_tls_client_hello_on_the_plain_port_is_closed_at_once(cache: Proxy):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", cache.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64)
        # Closed with the hello unread: an end of stream, or a reset.
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
    assert time.monotonic() - started < 2
    # Plain HTTP still works on the same port, the first byte left in place.
    assert cache.request("/v2/").status == 200


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"prefix": "/hub/"}, "kind oci has no prefix"),
        (
            {"kind": "generic", "prefix": "/x/", "hosts": ["docker.io"]},
            "hosts is for kind oci only",
        ),
        (
            {"kind": "generic", "prefix": "/x/", "default": True},
            "default is for kind oci only",
        ),
        ({"username": "u"}, "both username and password"),
        ({"hosts": "docker.io"}, "hosts must be a list"),
    ],
)
def test_bad_oci_settings_are_one_line_errors(table: dict[str, Any], expected: str):
    repository = {
        "name": "hub",
        "kind": "oci",
        "sources": ["https://registry-1.docker.io"],
        **table,
    }
    with pytest.raises(ConfigError, match=expected):
        config.build({"repository": [repository]})


def test_two_default_registries_are_refused():
    repositories = [
        {"name": name, "kind": "oci", "sources": ["https://r.example"], "default": True}
        for name in ("a", "b")
    ]
    with pytest.raises(ConfigError, match="both default"):
        config.build({"repository": repositories})


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_pulls_through_the_cache_with_its_own_scratch_storage(
    world: World, cache: Proxy, tmp_path: Path
):
    """podman as root with the vfs driver and storage, run folders and
    registries.conf of its own (nothing of the machine's)."""
    image = world.images["app"]
    (tmp_path / "registries.conf").write_text("")
    (tmp_path / "policy.json").write_text(
        '{"default": [{"type": "insecureAcceptAnything"}]}'
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg"),
        "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf"),
        "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
        "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"),
    }
    (tmp_path / "xdg").mkdir()
    (tmp_path / "containers.conf").write_text("")
    (tmp_path / "auth.json").write_text("{}")
    # podman refuses a run root longer than 50 characters.
    run_root = Path(tempfile.mkdtemp(prefix="pc-podman-"))
    podman = [
        "podman",
        "--root",
        str(tmp_path / "storage"),
        "--runroot",
        str(run_root),
        "--storage-driver",
        "vfs",
        "--log-level=error",
    ]
    pulled = subprocess.run(
        [
            *podman,
            "pull",
            "--tls-verify=false",
            "--signature-policy",
            str(tmp_path / "policy.json"),
            f"127.0.0.1:{cache.port}/hub/library/app:1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert pulled.returncode == 0, pulled.stderr
        inspected = subprocess.run(
            [*podman, "image", "inspect", f"127.0.0.1:{cache.port}/hub/library/app:1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert inspected.returncode == 0, inspected.stderr
        layers = json.loads(inspected.stdout)[0]["RootFS"]["Layers"]
        assert len(layers) == len(image.layer_digests())
        # Every blob came through the cache and is stored there.
        for digest in image.blobs:
            stored = cache.cached(f"v2/hub/blobs/sha256/{digest.split(':')[1]}")
            assert stored.read_bytes() == image.blobs[digest]
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
