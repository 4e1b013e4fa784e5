"""Real cargo through package-cache from a sparse registry made by the
test: a repository of kind "cargo" whose config.json is served with its
dl at the cache, whose index files are volatile, and whose .crate files
are immutable and checked against the cksum of their index line."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pkgcache.registries.cargoindex import (
    crate_of_file,
    download_url,
    index_entries,
    index_name,
)
from tests.cargorepo import CargoClient, Crate, SparseRegistry, find_cargo, make_crate
from tests.conftest import Proxy, wait_until
from tests.test_cli import run_cli
from tests.test_config_edges import write_config

needs_cargo = pytest.mark.skipif(
    find_cargo() is None,
    reason="needs cargo 1.68 or newer (rustup: https://rustup.rs), not found in "
    "PATH, $CARGO_HOME/bin or /root/.cargo/bin",
)

A = "pkgcache-demo-a"
B = "pkgcache-demo-b"
#: One crate per index layout: 1/q, 2/qz, 3/p/pkc, pk/gc/pkgcache-demo-*.
TREE = {A: "1"}
FRESH_FOR = 60


@pytest.fixture(scope="session")
def crates() -> dict[str, Crate]:
    built = [
        make_crate(B, "1.0.0"),
        make_crate("q", "1.0.0"),
        make_crate("qz", "1.0.0"),
        make_crate("pkc", "1.0.0"),
        make_crate(A, "1.0.0", {B: "1", "q": "1", "qz": "1", "pkc": "1"}),
    ]
    found = {crate.name: crate for crate in built}
    found[f"{B}@1.1.0"] = make_crate(B, "1.1.0")
    return found


@pytest.fixture
def registry(tmp_path: Path, crates: dict[str, Crate]) -> Iterator[SparseRegistry]:
    server = SparseRegistry(tmp_path / "registry").start()
    for name in (A, B, "q", "qz", "pkc"):
        server.publish(crates[name])
    yield server
    server.stop()


def cargo_repository(registry: SparseRegistry, **settings: Any) -> dict[str, Any]:
    return {
        "name": "crates",
        "prefix": "/crates/",
        "kind": "cargo",
        "sources": [registry.index_url],
        "file_sources": [registry.dl_template],
        "fresh_for": FRESH_FOR,
        **settings,
    }


def client(tmp_path: Path, name: str, proxy: Proxy) -> CargoClient:
    return CargoClient(tmp_path / f"client-{name}", f"{proxy.url}/crates/", TREE)


_ACCESS = re.compile(r'"GET (\S+)" (\d+) \d+ (\S+)')


def results(proxy: Proxy, target: str, answered: int) -> list[str]:
    """The result word of each GET of ``target``, once ``answered`` of them
    are logged."""

    def found() -> list[str]:
        words = []
        for line in proxy.log().splitlines():
            match = _ACCESS.search(line) if "pkgcache.access" in line else None
            if match and match.group(1) == target:
                words.append(match.group(3))
        return words

    wait_until(lambda: len(found()) >= answered, timeout=5)
    return found()


def ok(process: Any) -> bool:
    return process.returncode == 0


@needs_cargo
def test_cargo_through_the_cache_a_clean_client_gets_hits_and_builds_with_origin_gone(
    registry, crates, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[cargo_repository(registry)])
    config = json.loads(proxy.request("/crates/config.json").body)
    assert (
        config["dl"]
        == f"{proxy.url}/crates/files/{{crate}}/{{crate}}-{{version}}.crate"
    )
    assert "api" not in config  # read-only: no publish, yank or owners

    first = client(tmp_path, "first", proxy)
    fetched = first.fetch()
    assert ok(fetched), fetched.stderr + proxy.log()[-3000:]
    built = first.build()
    assert ok(built), built.stderr
    assert first.locked() == {name: "1.0.0" for name in (A, B, "q", "qz", "pkc")}
    for name in (A, B, "q", "qz", "pkc"):
        crate = crates[name]
        assert proxy.cached(crate.cache_path).read_bytes() == crate.data
        assert registry.requests[f"/crates/{name}/{crate.file}"] == 1
    assert registry.requests["/index/1/q"] == 1
    assert registry.requests["/index/3/p/pkc"] == 1
    before = dict(registry.requests)

    second = client(tmp_path, "second", proxy)
    assert ok(second.fetch())
    assert dict(registry.requests) == before
    for name in (A, "q"):
        assert results(proxy, crates[name].cache_path, 2) == ["miss", "hit"]
    assert "verified=sha256" in proxy.log()

    # The origin gone and the index stale: a clean client still builds.
    registry.stop()
    proxy.advance(FRESH_FOR + 1)
    offline = client(tmp_path, "offline", proxy)
    fetched = offline.fetch()
    assert ok(fetched), fetched.stderr
    built = offline.build()
    assert ok(built), built.stderr
    assert results(proxy, f"/crates/pk/gc/{A}", 3)[-1] == "stale"


@needs_cargo
def test_cargo_sees_a_new_version_after_fresh_for(
    registry, crates, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[cargo_repository(registry)])
    assert ok(client(tmp_path, "first", proxy).fetch())
    registry.publish(crates[f"{B}@1.1.0"])

    still_fresh = client(tmp_path, "fresh", proxy)
    assert ok(still_fresh.fetch())
    assert still_fresh.locked()[B] == "1.0.0"

    proxy.advance(FRESH_FOR + 1)
    later = client(tmp_path, "later", proxy)
    fetched = later.fetch()
    assert ok(fetched), fetched.stderr
    assert later.locked()[B] == "1.1.0"
    assert registry.requests[f"/crates/{B}/{B}-1.1.0.crate"] == 1
    index = f"/crates/pk/gc/{B}"
    assert results(proxy, index, 3)[-1] == "refreshed"
    # An index file that did not change is confirmed with its validators.
    assert results(proxy, "/crates/1/q", 3)[-1] == "revalidated"


@needs_cargo
def test_a_crate_whose_cksum_disagrees_is_never_stored(
    registry, crates, make_proxy, tmp_path: Path
):
    bad = make_crate("pkgcache-demo-bad", "1.0.0")
    registry.publish(bad, data=bad.data + b"tampered")
    proxy = make_proxy([], repository=[cargo_repository(registry)])
    cargo = CargoClient(tmp_path / "client", f"{proxy.url}/crates/", {bad.name: "1"})

    fetched = cargo.fetch()
    assert not ok(fetched)
    assert not proxy.cached(bad.cache_path).exists()
    assert "digest mismatch" in proxy.log()
    # Asked again: the bytes come, the last batch never does (the check
    # holds it back) and the connection is cut, as for any bad download.
    with pytest.raises(http.client.IncompleteRead):
        proxy.request(bad.cache_path)
    assert not proxy.cached(bad.cache_path).exists()
    assert proxy.partials() == []


def test_twenty_clients_of_one_crate_make_one_upstream_request(
    registry, crates, make_proxy
):
    """No client asked for the index file: the first .crate request reads
    it through the cache, and every other one waits for that."""
    proxy = make_proxy([], repository=[cargo_repository(registry)])
    crate = crates[A]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: proxy.request(crate.cache_path), range(20)))
    assert [answer.status for answer in answers] == [200] * 20
    assert all(answer.body == crate.data for answer in answers)
    assert registry.requests[f"/crates/{A}/{crate.file}"] == 1
    assert registry.requests[f"/index/pk/gc/{A}"] == 1
    assert proxy.cached(f"/crates/pk/gc/{A}").exists()
    assert "verified=sha256" in proxy.log()

    # package-cache verify checks the .crate against its index file's
    # cksum (a file of another size: its own record no longer applies).
    proxy.stop()
    command = ("verify", "--config", str(proxy.config), "--cache", str(proxy.cache))
    assert run_cli(*command).returncode == 0
    proxy.cached(crate.cache_path).write_bytes(crate.data + b"x")
    found = run_cli(*command)
    assert found.returncode == 1, found
    assert crate.file in found.stdout + found.stderr


def test_a_crate_its_index_does_not_list_is_404_and_never_fetched(
    registry, crates, make_proxy
):
    proxy = make_proxy([], repository=[cargo_repository(registry)])
    unlisted = make_crate("q", "9.9.9")
    (registry.root / "crates" / "q" / unlisted.file).write_bytes(unlisted.data)

    assert proxy.request(unlisted.cache_path).status == 404
    assert proxy.request("/crates/files/nosuch/nosuch-1.0.0.crate").status == 404
    assert registry.requests[f"/crates/q/{unlisted.file}"] == 0
    assert not proxy.cached(unlisted.cache_path).exists()
    assert registry.requests["/index/1/q"] == 1
    # Other unlisted versions: the index is not asked again within fresh_for.
    for version in ("9.9.8", "9.9.7"):
        assert proxy.request(f"/crates/files/q/q-{version}.crate").status == 404
    assert registry.requests["/index/1/q"] == 1
    proxy.advance(FRESH_FOR + 1)
    assert proxy.request(unlisted.cache_path).status == 404
    assert registry.requests["/index/1/q"] == 2
    # Listed: fetched and checked, the stored index file read.
    assert proxy.request(crates["q"].cache_path).status == 200
    assert registry.requests["/index/1/q"] == 2


def test_after_a_restart_a_crate_is_checked_against_the_stored_index(
    registry, crates, make_proxy, tmp_path: Path
):
    repository = cargo_repository(registry)
    proxy = make_proxy([], repository=[repository])
    assert proxy.request("/crates/2/qz").status == 200
    proxy.stop()
    registry.stop()  # only the .crate files remain reachable
    files = SparseRegistry(tmp_path / "files-only")
    files.start()
    crate = crates["qz"]
    (files.root / "crates" / "qz").mkdir()
    (files.root / "crates" / "qz" / crate.file).write_bytes(crate.data)
    try:
        restarted = make_proxy(
            [], repository=[{**repository, "file_sources": [files.dl_template]}]
        )
        answer = restarted.request(crate.cache_path)
        assert answer.status == 200, restarted.log()[-2000:]
        assert answer.body == crate.data
        assert wait_until(lambda: "miss verified=sha256" in restarted.log())
    finally:
        files.stop()


def test_config_json_names_the_public_url_and_bad_paths_are_refused(
    registry, make_proxy
):
    public = "https://cache.example:8443"
    proxy = make_proxy([], repository=[cargo_repository(registry, public_url=public)])
    config = json.loads(proxy.request("/crates/config.json").body)
    assert config["dl"].startswith(f"{public}/crates/files/")
    for path in (
        "/crates/PK/GC/pkgcache-demo-a",  # index paths are lower case
        "/crates/pk/gc/qz",  # not where qz's index file is
        "/crates/files/q/qz-1.0.0.crate",
        "/crates/files/q/q-x.crate",
        "/crates/api/v1/crates",
        "/crates/pk/",
    ):
        assert proxy.request(path).status == 404, path
    assert sum(registry.requests.values()) == 1  # config.json only


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'repository = [{ name = "c", prefix = "/c/", kind = "cargo",'
            ' sources = ["http://index.example"] }]',
            "kind cargo needs file_sources",
        ),
        (
            'repository = [{ name = "c", prefix = "/c/", kind = "cargo",'
            ' sources = ["http://i.example"], file_sources = ["http://f.example"],'
            ' public_url = "ftp://x" }]',
            "public_url",
        ),
        (
            'repository = [{ name = "c", prefix = "/c/", kind = "cargo",'
            ' sources = ["http://i.example"], file_sources = ["http://f.example"],'
            " rules = [] }]",
            "kind cargo has fixed rules",
        ),
    ],
)
def test_bad_cargo_config_exits_2_with_one_line(tmp_path: Path, line, expected):
    conf = write_config(tmp_path, line)
    result = run_cli("--config", str(conf), timeout=8)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_dl_templates_and_paths():
    cksum = "ab" * 32
    assert (
        download_url("https://static.example/crates", "Serde", "1.0.0", None)
        == "https://static.example/crates/Serde/1.0.0/download"
    )
    template = (
        "https://f.example/{prefix}/{lowerprefix}/{crate}/{version}/{sha256-checksum}"
    )
    assert (
        download_url(template, "Serde", "1.0.0", cksum)
        == f"https://f.example/Se/rd/se/rd/Serde/1.0.0/{cksum}"
    )
    assert download_url(template, "Serde", "1.0.0", None) is None
    assert download_url("http://f/{crate}", "ab", "1.0.0", None) == "http://f/ab"
    assert index_name(("3", "s", "syn")) == "syn"
    assert index_name(("se", "rd", "serde")) == "serde"
    assert index_name(("1", "ab")) is None
    assert index_name(("Se", "rd", "Serde")) is None
    assert crate_of_file(("files", "serde", "serde-1.0.0+x.crate")) == (
        "serde",
        "1.0.0+x",
    )
    assert crate_of_file(("files", "serde", "serde-.crate")) is None


def test_an_index_file_vouches_for_its_own_crate_only():
    mine = json.dumps({"name": "Serde", "vers": "1.0.0", "cksum": "aa" * 32})
    other = json.dumps({"name": "evil", "vers": "1.0.0", "cksum": "bb" * 32})
    data = f"{mine}\nnot json\n{other}\n".encode()
    assert list(index_entries(data, "serde")) == [("Serde", "1.0.0", "aa" * 32)]
    with pytest.raises(ValueError):
        list(index_entries(b"<html>maintenance</html>", "serde"))
