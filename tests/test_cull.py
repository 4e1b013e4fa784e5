"""Culling: the command, and the daemon's own eviction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pkgcache.store import cull as cull_library
from tests.conftest import ROOT, Proxy, wait_until
from tests.origin import content

DAY = 86400


def put(root: Path, relative: str, size: int, days_ago: float) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - days_ago * DAY
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    put(root, "distfiles/old.tar.gz", 1000, 40)
    put(root, "distfiles/older.tar.gz", 1000, 50)
    put(root, "distfiles/new.tar.gz", 1000, 1)
    put(root, "other/deep/mid.tar.xz", 1000, 20)
    put(root, ".partial/dl-inflight", 5000, 100)
    return root


def cull(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkgcache", "cull", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def remaining(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def cache_files(proxy: Proxy) -> int:
    """The complete files the daemon counts in its cache."""
    status = json.loads(proxy.request("/.pkgcache/status.json").body)
    return status["cache"]["files"]


def test_cull_by_age_removes_files_not_accessed_for_that_long(cache: Path):
    result = cull("--cache", str(cache), "--older-than", "30d")
    assert result.returncode == 0, result.stderr
    assert "removed 2 files, 2000 bytes" in result.stdout
    assert remaining(cache) == {
        "distfiles/new.tar.gz",
        "other/deep/mid.tar.xz",
        ".partial/dl-inflight",
    }


def test_cull_by_size_removes_least_recently_accessed_first(cache: Path):
    result = cull("--cache", str(cache), "--max-size", "2500")
    assert result.returncode == 0, result.stderr
    assert remaining(cache) == {
        "distfiles/new.tar.gz",
        "other/deep/mid.tar.xz",
        ".partial/dl-inflight",
    }
    result = cull("--cache", str(cache), "--max-size", "1000")
    assert remaining(cache) == {"distfiles/new.tar.gz", ".partial/dl-inflight"}
    assert not (cache / "other").exists(), "empty folders are removed"
    assert cache.exists()


def test_dry_run_changes_nothing(cache: Path):
    before = {p: p.stat().st_atime for p in cache.rglob("*") if p.is_file()}
    result = cull("--cache", str(cache), "--max-size", "0", "--dry-run")
    assert result.returncode == 0
    assert "would remove 4 files, 4000 bytes" in result.stdout
    assert {p: p.stat().st_atime for p in cache.rglob("*") if p.is_file()} == before


def test_partials_and_symlinked_targets_are_never_touched(cache: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    keep = put(outside, "precious.tar", 1000, 400)
    os.symlink(outside, cache / "link-to-outside")
    os.symlink(keep, cache / "distfiles" / "link.tar")
    cull("--cache", str(cache), "--max-size", "0")
    assert keep.exists()
    assert (cache / ".partial" / "dl-inflight").exists()


def test_min_free_with_plenty_free_removes_nothing(cache: Path):
    result = cull("--cache", str(cache), "--min-free", "1K")
    assert "removed 0 files" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--cache", "/nonexistent", "--max-size", "1G"],
        ["--cache", ".", "--older-than", "soon"],
        ["--cache", ".", "--max-size", "big"],
    ],
)
def test_bad_cull_usage_exits_2_with_one_line(args):
    result = cull(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_file_culled_while_being_served_still_arrives_whole(proxy):
    size = 60 * 1024 * 1024
    path = f"/files/{size}/culled-while-read.tar"
    proxy.request(path)
    response = proxy.open(path)
    assert response.headers["X-Package-Cache"] == "hit"
    first = response.read(1024 * 1024)
    # What the daemon's own eviction does (the command refuses a cache a
    # daemon holds): the library's cull, beside the running daemon.
    result, _victims = cull_library.cull(str(proxy.cache), max_size=0)
    assert result.files == 1
    assert not proxy.cached(path).exists()
    assert first + response.read() == content("culled-while-read.tar", size)
    again = proxy.request(path)
    assert again.headers["X-Package-Cache"] == "miss"


def test_daemon_evicts_when_max_size_would_be_crossed(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], max_size=250_000)
    for stored, name in enumerate(("a.tar", "b.tar"), start=1):
        assert proxy.request(f"/files/100000/{name}").status == 200
        # Eviction decides from the daemon's own count of stored files, and
        # a client may have the whole body before the file is published.
        assert wait_until(lambda stored=stored: cache_files(proxy) >= stored)
    old = time.time() - DAY
    os.utime(proxy.cached("/files/100000/a.tar"), (old, old))
    assert proxy.request("/files/100000/c.tar").status == 200
    assert wait_until(lambda: not proxy.cached("/files/100000/a.tar").exists())
    assert proxy.cached("/files/100000/b.tar").exists()
    assert wait_until(lambda: proxy.cached("/files/100000/c.tar").exists())
    assert wait_until(lambda: "evicted 1 files" in proxy.log())


def test_protected_files_count_toward_max_size_but_are_never_chosen() -> None:
    """What a prefetch pass just fetched stays; older files go in its place,
    as many as the bound needs with the protected bytes counted."""
    entries = [
        cull_library.CachedEntry("/c/prefetched", 500, atime=1.0),
        cull_library.CachedEntry("/c/old", 300, atime=2.0),
        cull_library.CachedEntry("/c/newer", 300, atime=3.0),
    ]
    chosen = cull_library.choose(
        entries, max_size=600, now=10.0, protected=frozenset({"/c/prefetched"})
    )
    assert [entry.path for entry in chosen] == ["/c/old", "/c/newer"]
    unprotected = cull_library.choose(entries, max_size=600, now=10.0)
    assert [entry.path for entry in unprotected] == ["/c/prefetched"]
