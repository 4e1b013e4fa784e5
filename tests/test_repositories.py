"""Repositories: routing by prefix, volatile files revalidated after
fresh_for, stale copies when sources fail, offline, negative answers,
pass-through, validators kept across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Proxy, wait_until
from tests.static_origin import StaticOrigin

INDEX = "dists/stable/InRelease"
#: Seconds an index stays fresh: long, so no real delay makes a copy stale;
#: tests move the proxy's clock past it (``Proxy.advance``).
FRESH_FOR = 600


@pytest.fixture
def mirror(tmp_path: Path):
    root = tmp_path / "mirror"
    (root / "dists/stable").mkdir(parents=True)
    (root / "pool").mkdir()
    (root / INDEX).write_bytes(b"version 1\n")
    (root / "pool/hello_1.0_all.deb").write_bytes(b"deb" * 1000)
    server = StaticOrigin(root).start()
    yield server
    server.stop()


def publish(mirror: StaticOrigin, path: str, data: bytes) -> None:
    """A new version of a file, with a later mtime (and so Last-Modified)."""
    target = mirror.root / path
    target.write_bytes(data)
    later = time.time() + 5
    os.utime(target, (later, later))


def debian(mirror: StaticOrigin, **settings) -> dict:
    return {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [mirror.url],
        "fresh_for": f"{FRESH_FOR}s",
        **settings,
    }


def test_a_request_goes_to_the_repository_with_the_longest_prefix(make_proxy, tmp_path):
    roots = {}
    for name in ("outer", "inner"):
        roots[name] = tmp_path / name
        (roots[name] / "x").mkdir(parents=True)
        (roots[name] / "x" / "f.txt").write_text(name)
    outer, inner = (StaticOrigin(roots[name]).start() for name in ("outer", "inner"))
    try:
        repositories = [
            {"name": "outer", "prefix": "/a/", "sources": [outer.url]},
            {"name": "inner", "prefix": "/a/b/", "sources": [inner.url]},
        ]
        proxy = make_proxy([], repository=repositories)
        assert proxy.request("/a/x/f.txt").body == b"outer"
        assert proxy.request("/a/b/x/f.txt").body == b"inner"
        assert proxy.cached("/a/b/x/f.txt").read_text() == "inner"
        assert proxy.request("/elsewhere/x/f.txt").status == 404
    finally:
        outer.stop()
        inner.stop()


def test_a_volatile_index_is_revalidated_after_fresh_for(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    first = proxy.request(path)
    assert first.body == b"version 1\n"
    assert first.headers["X-Package-Cache"] == "miss"
    assert proxy.request(path).headers["X-Package-Cache"] == "hit"
    assert mirror.count(INDEX) == 1  # fresh: nobody asked upstream
    proxy.advance(FRESH_FOR + 1)
    again = proxy.request(path)
    assert again.headers["X-Package-Cache"] == "revalidated"
    assert again.body == b"version 1\n"
    assert mirror.count(INDEX) == 2
    publish(mirror, INDEX, b"version 2, longer\n")
    assert proxy.request(path).body == b"version 1\n"  # fresh again after the 304
    proxy.advance(FRESH_FOR + 1)
    refreshed = proxy.request(path)
    assert refreshed.headers["X-Package-Cache"] == "refreshed"
    assert refreshed.body == b"version 2, longer\n"
    assert proxy.cached(path).read_bytes() == b"version 2, longer\n"
    # Package files are immutable: never asked again.
    deb = "/debian/pool/hello_1.0_all.deb"
    assert proxy.request(deb).status == 200
    proxy.advance(FRESH_FOR + 1)
    assert proxy.request(deb).headers["X-Package-Cache"] == "hit"
    assert mirror.count("hello_1.0_all.deb") == 1


def test_concurrent_requests_for_a_stale_index_make_one_upstream_request(
    make_proxy, mirror
):
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    publish(mirror, INDEX, b"version 2\n" * 1000)
    proxy.advance(FRESH_FOR + 1)
    bodies: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: bodies.append(proxy.request(path).body))
        for _ in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == 50
    assert set(bodies) == {b"version 2\n" * 1000}
    assert mirror.count(INDEX) == 2


def test_a_stale_copy_is_served_when_every_source_fails(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror, fresh_for="1s")])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    mirror.stop()
    time.sleep(1.2)  # real time on purpose: one test where no clock is moved
    stale = proxy.request(path)
    assert stale.status == 200
    assert stale.headers["X-Package-Cache"] == "stale"
    assert stale.body == b"version 1\n"


def test_a_stale_copy_past_stale_if_error_is_not_served(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror, stale_if_error="1s")])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    mirror.stop()
    proxy.advance(FRESH_FOR + 2)
    assert proxy.request(path).status in (502, 504)


def test_offline_never_asks_upstream_for_cached_files(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    settings = {**proxy.settings, "repository": [debian(mirror, offline=True)]}
    proxy.write_config(**settings)
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: "reloaded settings" in proxy.log())
    proxy.advance(FRESH_FOR + 1)
    assert proxy.request(path).headers["X-Package-Cache"] == "hit"
    assert mirror.count(INDEX) == 1
    assert proxy.request("/debian/pool/not-cached.deb").status == 504
    assert mirror.count("not-cached.deb") == 0


def test_a_missing_file_is_asked_once_per_source_for_negative_for(
    make_proxy, mirror, tmp_path
):
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = StaticOrigin(other_root).start()
    try:
        repository = debian(mirror, negative_for="30s")
        repository["sources"] = [mirror.url, other.url]
        proxy = make_proxy([], repository=[repository])
        path = "/debian/dists/stable/main/Contents-amd64.sig"
        statuses = [proxy.request(path).status for _ in range(20)]
        assert statuses == [404] * 20
        assert mirror.count("Contents-amd64.sig") == 1
        assert other.count("Contents-amd64.sig") == 1
        assert "negative" in proxy.log()
    finally:
        other.stop()


def test_a_file_gone_upstream_is_gone_from_the_cache(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror, negative_for="0")])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    (mirror.root / INDEX).unlink()
    proxy.advance(FRESH_FOR + 1)
    assert proxy.request(path).status == 404
    assert not proxy.cached(path).exists()


def test_pass_files_are_streamed_and_never_stored(make_proxy, mirror):
    rules = [{"match": "dists/*/Changelogs/**", "policy": "pass"}]
    (mirror.root / "dists/stable/Changelogs").mkdir()
    (mirror.root / "dists/stable/Changelogs/hello").write_text("changes\n")
    proxy = make_proxy([], repository=[debian(mirror, rules=rules)])
    path = "/debian/dists/stable/Changelogs/hello"
    for _ in range(2):
        response = proxy.request(path)
        assert response.body == b"changes\n"
        assert response.headers["X-Package-Cache"] == "pass"
    assert not proxy.cached(path).exists()
    assert mirror.count("Changelogs/hello") == 2


def test_validators_survive_a_restart(tmp_path, mirror):
    first = Proxy(tmp_path, [], repository=[debian(mirror)]).start()
    path = f"/debian/{INDEX}"
    try:
        assert first.request(path).status == 200
    finally:
        assert first.stop() == 0
    second = Proxy(tmp_path, [], repository=[debian(mirror)])
    second.cache = first.cache
    second.write_config(**{**second.settings, "cache": str(first.cache)})
    second.start()
    try:
        second.advance(FRESH_FOR + 1)
        again = second.request(path)
        assert again.headers["X-Package-Cache"] == "revalidated"
        assert mirror.count(INDEX) == 2
    finally:
        second.stop()
    assert "Traceback" not in first.log() + second.log()


def test_a_slow_reader_of_the_old_version_gets_it_whole(make_proxy, mirror):
    old = b"old " * 500_000  # 2 MB
    publish(mirror, INDEX, old)
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).body == old
    slow = proxy.open(path)
    first = slow.read(1000)
    publish(mirror, INDEX, b"new " * 600_000)
    proxy.advance(FRESH_FOR + 1)
    assert proxy.request(path).body == b"new " * 600_000
    assert first + slow.read() == old


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{name = "Bad", prefix = "/a/", sources = ["http://h"]}', "name must match"),
        ('{name = "a", prefix = "a/", sources = ["http://h"]}', "prefix must start"),
        ('{name = "a", prefix = "/a/", sources = ["http://h"], kind = "x"}', "kind"),
        ('{name = "a", prefix = "/a/", sources = []}', "sources must be"),
        ('{name = "a", prefix = "/a/", sources = ["http://h"], colour = 1}', "unknown"),
        (
            '{name = "a", prefix = "/a/", sources = ["http://h"], rules = '
            '[{match = "a**", policy = "pass"}]}',
            "bad glob",
        ),
        (
            '{name = "a", prefix = "/a/", sources = ["http://h"], rules = '
            '[{match = "a/*", policy = "sometimes"}]}',
            "policy must be",
        ),
        (
            '{name = "a", prefix = "/a/", sources = ["http://h"]}, '
            '{name = "a", prefix = "/b/", sources = ["http://h"]}',
            "two repositories are named",
        ),
        (
            '{name = "a", prefix = "/a/", sources = ["http://h"]}, '
            '{name = "b", prefix = "/a/", sources = ["http://h"]}',
            "same prefix",
        ),
    ],
)
def test_a_bad_repository_is_one_line_and_exit_2(tmp_path, table, message):
    config = tmp_path / "bad.conf"
    config.write_text(f"repository = [{table}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pkgcache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_metrics_and_status_per_repository(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    proxy.request(path)
    proxy.request(path)
    proxy.advance(FRESH_FOR + 1)
    proxy.request(path)
    metrics = proxy.request("/.pkgcache/metrics").body.decode()
    for result in ("miss", "hit", "revalidated"):
        labels = f'repository="debian",result="{result}"'
        assert f"pkgcache_repository_requests_total{{{labels}}} 1.0" in metrics
    assert (
        'pkgcache_repository_upstream_bytes_total{repository="debian"} 10.0' in metrics
    )
    status = json.loads(proxy.request("/.pkgcache/status.json").body)
    (repository,) = status["repositories"]
    assert repository["name"] == "debian" and repository["kind"] == "debian"
    assert repository["requests"]["revalidated"] == 1
    assert list(repository["sources"]) == [mirror.url]
    assert b"<h2>Repositories</h2>" in proxy.request("/.pkgcache/status").body


def test_a_reload_adds_a_repository(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror)])
    assert proxy.request("/second/pool/hello_1.0_all.deb").status == 404
    second = {**debian(mirror), "name": "second", "prefix": "/second/"}
    proxy.write_config(**{**proxy.settings, "repository": [debian(mirror), second]})
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: "reloaded settings" in proxy.log())
    response = proxy.request("/second/pool/hello_1.0_all.deb")
    assert response.status == 200
    assert response.body == (mirror.root / "pool/hello_1.0_all.deb").read_bytes()


def test_eviction_removes_a_volatile_file_with_its_validators(make_proxy, mirror):
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    record = proxy.cache / ".meta" / "debian" / (INDEX + ".json")
    assert record.exists()
    assert proxy.stop() == 0  # cull refuses a cache a daemon holds
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pkgcache",
            "cull",
            "--cache",
            str(proxy.cache),
            "--max-size",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert not proxy.cached(path).exists()
    assert not record.exists()


def test_range_head_and_joiners_on_a_stale_index(make_proxy, mirror):
    """A Range on a stale copy is answered from the revalidated copy; a HEAD
    of a stale copy is answered from it without asking; a client that joins
    a refresh gets the new version whole."""
    publish(mirror, INDEX, b"0123456789" * 100_000)
    proxy = make_proxy([], repository=[debian(mirror)])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).status == 200
    proxy.advance(FRESH_FOR + 1)
    part = proxy.request(path, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == b"0123456789"
    assert part.headers["X-Package-Cache"] == "revalidated"
    proxy.advance(FRESH_FOR + 1)
    asked = mirror.count(INDEX)
    head = proxy.request(path, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == "1000000"
    assert mirror.count(INDEX) == asked
    new = b"abcdefghij" * 300_000
    publish(mirror, INDEX, new)
    bodies: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: bodies.append(proxy.request(path).body))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert bodies == [new] * 5
    assert proxy.cached(path).read_bytes() == new
