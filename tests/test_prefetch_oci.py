"""Prefetch for ``kind = "oci"``: a client pulls a tag through the cache
with skopeo, the tag is pushed again upstream with a new layer, and after
a pass the new manifest and the blobs it adds are in the cache before
anyone asks; the next pull asks the registry for no blob. For a
multi-platform index, only the platform pulled before is fetched.

The origin is Debian's docker-registry behind a counting gate
(``tests/ociregistry.py``); the finder's reading of paths and bounds is
tested in process below."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkgcache.prefetch.finders import IndexRead
from pkgcache.prefetch.oci import ACCEPT, MAX_ENTRIES, OciFinder
from tests.ociregistry import (
    DistributionRegistry,
    Layout,
    RegistryGate,
    Skopeo,
    digest_of,
    layer,
)
from tests.test_prefetch import start_pass, wait_for_pass

FRESH_FOR = 300

needs_registry = pytest.mark.skipif(
    not (shutil.which("skopeo") and shutil.which("docker-registry")),
    reason="needs skopeo and docker-registry",
)


class Origin:
    """A registry with images pushed by the tests, behind a counting gate."""

    def __init__(self, tmp: Path) -> None:
        self.registry = DistributionRegistry(tmp / "registry").start()
        self.skopeo = Skopeo(tmp / "skopeo")
        self.layout = Layout(tmp / "layout")
        self.gate = RegistryGate(self.registry.url).start()

    def push(self, name: str, image: Any, all_images: bool = False) -> None:
        self.layout.tag(name, image)
        self.skopeo.push(
            self.layout.folder,
            name,
            f"{self.registry.host}/library/{name}:1",
            all_images,
        )

    def stop(self) -> None:
        self.gate.stop()
        self.registry.stop()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    made = Origin(tmp_path_factory.mktemp("oci-prefetch"))
    try:
        yield made
    finally:
        made.stop()


def _proxy(origin: Origin, make_proxy: Any) -> Any:
    origin.gate.reset()
    return make_proxy(
        [],
        repository=[
            {
                "name": "hub",
                "kind": "oci",
                "sources": [origin.gate.url],
                "fresh_for": FRESH_FOR,
            }
        ],
    )


def _blob_gets(origin: Origin) -> list[str]:
    return [path for method, path in origin.gate.log if "/blobs/" in path]


@needs_registry
def test_a_pass_fetches_the_new_manifest_and_the_blobs_it_adds(
    origin: Origin, make_proxy: Any, tmp_path: Path
) -> None:
    base = layer({"base.txt": b"base\n" * 100})
    origin.push("app", origin.layout.manifest([base]))
    proxy = _proxy(origin, make_proxy)
    source = f"127.0.0.1:{proxy.port}/hub/library/app:1"
    first = origin.skopeo.pull(source, f"dir:{tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr

    added = layer({"new.txt": b"a new layer\n" * 50})
    moved = origin.layout.manifest([base, added])
    origin.push("app", moved)
    origin.gate.reset()
    proxy.advance(FRESH_FOR + 1)

    report = wait_for_pass(proxy, "hub", after=start_pass(proxy, "hub"))
    config = json.loads(moved.manifest)["config"]["digest"]
    assert report["files"].get("fetched") == 2, report  # the new layer, config
    assert origin.gate.count("GET", f"/blobs/{digest_of(added)}") == 1
    assert origin.gate.count("GET", f"/blobs/{config}") == 1
    assert origin.gate.count("GET", f"/blobs/{digest_of(base)}") == 0
    assert origin.gate.count("GET", "/manifests/1") == 1  # the new manifest

    origin.gate.reset()
    second = origin.skopeo.pull(source, f"dir:{tmp_path / 'b'}")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "b" / "manifest.json").read_bytes() == moved.manifest
    got = (tmp_path / "b" / digest_of(added).split(":")[1]).read_bytes()
    assert got == added
    assert _blob_gets(origin) == []
    assert origin.gate.log == []  # the tag was refreshed by the pass


@needs_registry
def test_a_multi_platform_pass_fetches_only_the_platform_pulled_before(
    origin: Origin, make_proxy: Any, tmp_path: Path
) -> None:
    before = origin.layout.index(
        {
            "linux/amd64": [layer({"amd": b"amd64 one\n"})],
            "linux/arm64": [layer({"arm": b"arm64 one\n"})],
        }
    )
    origin.push("multi", before, all_images=True)
    proxy = _proxy(origin, make_proxy)
    source = f"127.0.0.1:{proxy.port}/hub/library/multi:1"
    arm = ("--override-os", "linux", "--override-arch", "arm64")
    first = origin.skopeo.pull(source, f"dir:{tmp_path / 'a'}", *arm)
    assert first.returncode == 0, first.stderr

    new_amd = layer({"amd": b"amd64 two\n"})
    new_arm = layer({"arm": b"arm64 two\n"})
    after = origin.layout.index({"linux/amd64": [new_amd], "linux/arm64": [new_arm]})
    origin.push("multi", after, all_images=True)
    origin.gate.reset()
    proxy.advance(FRESH_FOR + 1)

    report = wait_for_pass(proxy, "hub", after=start_pass(proxy, "hub"))
    arm_child = digest_of(after.children["linux/arm64"])
    amd_child = digest_of(after.children["linux/amd64"])
    assert origin.gate.count("GET", f"/manifests/{arm_child}") == 1
    assert origin.gate.count("GET", f"/blobs/{digest_of(new_arm)}") == 1
    assert origin.gate.count("GET", f"/manifests/{amd_child}") == 0
    assert origin.gate.count("GET", f"/blobs/{digest_of(new_amd)}") == 0
    assert report["files"].get("fetched") == 2, report  # arm64's layer, config

    origin.gate.reset()
    second = origin.skopeo.pull(source, f"dir:{tmp_path / 'b'}", *arm)
    assert second.returncode == 0, second.stderr
    got = (tmp_path / "b" / digest_of(new_arm).split(":")[1]).read_bytes()
    assert got == new_arm
    assert origin.gate.log == []


# The finder in process ------------------------------------------------------


def _manifest(config: str, layers: list[str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": config, "size": 10},
            "layers": [{"digest": d, "size": 100} for d in layers],
        }
    ).encode()


def _digest(name: str) -> str:
    return digest_of(name.encode())


def test_the_finder_reads_the_namespaced_form_and_the_platform_from_a_config() -> None:
    finder = OciFinder("/v2/hub/")
    old_child, config, old_layer = _digest("old"), _digest("cfg"), _digest("l1")
    # A default repository: the client asked without the namespace.
    recent = [
        "/v2/library/x/manifests/1",
        f"/v2/library/x/manifests/{old_child}",
        f"/v2/library/x/blobs/{config}",
        f"/v2/library/x/blobs/{old_layer}",
        f"/v2/library/y/manifests/{old_child}",  # by digest only: not followed
    ]
    tag = IndexRead("/v2/hub/library/x/manifests/1", ACCEPT)
    pulled = IndexRead(f"/v2/hub/library/x/manifests/{old_child}", ACCEPT)
    assert finder.indexes(recent) == [tag, pulled]

    arm_child, amd_child = _digest("arm"), _digest("amd")
    index = json.dumps(
        {
            "manifests": [
                {
                    "digest": amd_child,
                    "size": 5,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "digest": arm_child,
                    "size": 7,
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
            ]
        }
    ).encode()
    bodies = {tag: index, pulled: _manifest(config, [old_layer])}
    config_read = IndexRead(f"/v2/hub/library/x/blobs/{config}")
    assert finder.more_indexes(recent, bodies) == [config_read]

    bodies[config_read] = b'{"os": "linux", "architecture": "arm64"}'
    child = IndexRead(f"/v2/hub/library/x/manifests/{arm_child}", ACCEPT)
    assert finder.more_indexes(recent, bodies) == [child]

    new_config, new_layer = _digest("cfg2"), _digest("l2")
    bodies[child] = _manifest(new_config, [old_layer, new_layer])
    wanted = finder.wanted(recent, bodies, versions=1)
    assert [(w.path, w.size) for w in wanted] == [
        (child.path, 7),
        (f"/v2/hub/library/x/blobs/{new_config}", 10),
        (f"/v2/hub/library/x/blobs/{new_layer}", 100),
    ]


def test_the_finder_bounds_what_it_reads() -> None:
    finder = OciFinder("/v2/hub/")
    recent = ["/v2/hub/x/manifests/1", "/v2/hub/x/manifests/../etc"]
    tag = IndexRead("/v2/hub/x/manifests/1", ACCEPT)
    assert finder.indexes(recent) == [tag]
    many = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": _digest("c"), "size": 1},
            "layers": [
                {"digest": _digest(str(n)), "size": 1} for n in range(MAX_ENTRIES * 4)
            ],
        }
    ).encode()
    wanted = finder.wanted(recent, {tag: many}, versions=1)
    assert 1 < len(wanted) <= 1 + 512
    assert finder.wanted(recent, {tag: b"[" * 100_000}, versions=1) == []
    assert finder.wanted(recent, {tag: b"{" + b" " * (5 << 20) + b"}"}, 1) == []
