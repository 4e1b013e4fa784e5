"""The cache's reported size (metrics, status.json) equals the disk: after
misses, refreshes of a volatile file, a 304, a copy removed by a 404,
eviction by max_size and the daemon's cull by max_age; and a scan that
runs while files are published and removed ends equal to the disk.

"The disk" is a walk of the cache folder: regular files, without the
daemon's own dot-named entries at the root (``.partial``, ``.meta``)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import threading
import time
from pathlib import Path

from pkgcache.clock import ManualClock
from pkgcache.store import cull
from pkgcache.store.cache import CacheStore
from pkgcache.store.keeping import Keeping
from pkgcache.store.meta import MetaStore
from pkgcache.store.paths import cache_key
from pkgcache.store.usage import CacheUsage
from tests.conftest import Proxy, wait_until
from tests.pypirepo import JSON, PypiRepo, serve
from tests.static_origin import StaticOrigin

DAY = 86400
#: Long, so no real delay makes a copy stale; the test moves the clock.
FRESH_FOR = 600


def disk(root: Path) -> tuple[int, int]:
    """Files and bytes a walk of the cache folder finds."""
    files = size = 0
    for folder, folders, names in os.walk(root):
        if folder == str(root):
            folders[:] = [name for name in folders if not name.startswith(".")]
            names = [name for name in names if not name.startswith(".")]
        for name in names:
            result = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(result.st_mode):
                files += 1
                size += result.st_size
    return files, size


def reported(proxy: Proxy) -> dict[str, tuple[int, int]]:
    """What the metrics and the status page say the cache holds."""
    text = proxy.request("/.pkgcache/metrics").body.decode()
    gauges = {
        name: int(float(re.search(rf"(?m)^{name} (\S+)", text).group(1)))
        for name in ("pkgcache_cache_files", "pkgcache_cache_bytes")
    }
    cache = json.loads(proxy.request("/.pkgcache/status.json").body)["cache"]
    assert cache["counted"]
    return {
        "metrics": (gauges["pkgcache_cache_files"], gauges["pkgcache_cache_bytes"]),
        "status": (cache["files"], cache["bytes"]),
    }


def assert_equal_to_disk(proxy: Proxy, step: str) -> None:
    def equal() -> bool:
        on_disk = disk(proxy.cache)
        return reported(proxy) == {"metrics": on_disk, "status": on_disk}

    # A client may have its last byte a moment before the file is published,
    # and eviction runs in a worker thread: wait for the count to settle.
    assert wait_until(equal), (step, reported(proxy), disk(proxy.cache))


def put(root: Path, path: str, data: bytes, mtime: float | None = None) -> None:
    """A file at the origin; a new version gets a later mtime (and so a
    Last-Modified the stored copy's does not match)."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    stamp = time.time() if mtime is None else mtime
    os.utime(target, (stamp, stamp))


def test_reported_size_equals_the_disk_through_a_scripted_sequence(
    make_proxy, tmp_path: Path
):
    mirror_root = tmp_path / "mirror"
    index, release = "dists/stable/InRelease", "dists/stable/Release"
    put(mirror_root, index, b"version 0\n")
    put(mirror_root, release, b"R" * 2000)
    for name in ("a", "b", "c"):
        put(mirror_root, f"pool/{name}.deb", name.encode() * (30_000 + ord(name)))
    pypi_repo = PypiRepo(tmp_path / "pypi")
    pypi_repo.add_wheel("alpha", "1.0")
    mirror = StaticOrigin(mirror_root).start()
    try:
        with serve(pypi_repo) as (pypi_index, pypi_files):
            repositories = [
                {
                    "name": "debian",
                    "prefix": "/debian/",
                    "kind": "debian",
                    "sources": [mirror.url],
                    "fresh_for": FRESH_FOR,
                },
                {
                    "name": "pypi",
                    "prefix": "/pypi/",
                    "kind": "pypi",
                    "sources": [pypi_index.url],
                    "file_sources": [pypi_files.url],
                    "fresh_for": FRESH_FOR,
                },
            ]
            proxy = make_proxy(
                [],
                repository=repositories,
                max_size=90_000,
                max_age=DAY,
                # No timed pass until the last step: a pass counts the disk
                # afresh and would hide a count that drifted.
                cull_interval=3600,
            )
            run_sequence(proxy, mirror_root, pypi_repo)
    finally:
        mirror.stop()


def run_sequence(proxy: Proxy, mirror_root: Path, pypi_repo: PypiRepo) -> None:
    index, release = "/debian/dists/stable/InRelease", "/debian/dists/stable/Release"
    page = "/pypi/simple/alpha/"

    def get(path: str, result: str | None, status: int = 200) -> None:
        answer = proxy.request(path, headers={"Accept": JSON})
        assert answer.status == status, (path, answer.status)
        assert answer.headers["X-Package-Cache"] == result, (path, result)

    assert_equal_to_disk(proxy, "empty")
    for path in (index, release, "/debian/pool/a.deb", "/debian/pool/b.deb", page):
        get(path, "miss")
        assert_equal_to_disk(proxy, f"miss {path}")
    assert proxy.cached(page + "index.json").exists()  # a registry page is a file

    sizes = random.Random(23)
    later = time.time()
    for refresh in range(1, 9):
        # A new version of the index, larger or smaller than the last.
        later += 10
        body = f"version {refresh}\n".encode() * sizes.randrange(1, 400)
        put(mirror_root, index[len("/debian/") :], body, later)
        if refresh == 4:
            pypi_repo.add_wheel("alpha", "1.1")
        proxy.advance(FRESH_FOR + 1)
        get(index, "refreshed")
        assert proxy.cached(index).read_bytes() == body
        assert_equal_to_disk(proxy, f"refresh {refresh}")
        get(page, "refreshed" if refresh == 4 else "revalidated")
        assert_equal_to_disk(proxy, f"page after refresh {refresh}")

    proxy.advance(FRESH_FOR + 1)
    get(index, "revalidated")  # a 304: nothing changes
    assert_equal_to_disk(proxy, "304")

    os.unlink(mirror_root / release[len("/debian/") :])
    proxy.advance(FRESH_FOR + 1)
    get(release, None, 404)  # gone upstream: the stored copy goes too
    assert not proxy.cached(release).exists()
    assert_equal_to_disk(proxy, "404")

    # c.deb does not fit beside a.deb and b.deb under max_size: a.deb, least
    # recently used, makes room.
    old = time.time() - DAY / 2
    os.utime(proxy.cached("/debian/pool/a.deb"), (old, old))
    get("/debian/pool/c.deb", "miss")
    assert wait_until(lambda: not proxy.cached("/debian/pool/a.deb").exists())
    assert proxy.cached("/debian/pool/b.deb").exists()
    assert_equal_to_disk(proxy, "eviction by max_size")

    # Two days on, everything but b.deb (used "in the future") is past
    # max_age: the daemon's next pass removes it.
    future = time.time() + 3 * DAY
    os.utime(proxy.cached("/debian/pool/b.deb"), (future, future))
    proxy.advance(2 * DAY)
    reloads = proxy.log().count("reloaded settings")
    proxy.settings["cull_interval"] = 1
    proxy.write_config(**proxy.settings)
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: proxy.log().count("reloaded settings") > reloads)
    assert wait_until(lambda: disk(proxy.cache) == (1, 30_098))
    assert proxy.cached("/debian/pool/b.deb").exists()
    assert_equal_to_disk(proxy, "cull by max_age")


# In process: a scan while the cache changes.


def build_cache(root: Path, folders: int, files: int) -> list[str]:
    """``folders`` x ``files`` small files; their request paths."""
    paths = []
    for f in range(folders):
        for n in range(files):
            path = f"/d{f}/f{n}.bin"
            put(root, path.lstrip("/"), b"x" * (100 + f * files + n))
            paths.append(path)
    return paths


def publish(store: CacheStore, keeping: Keeping, path: str, size: int) -> bool:
    """``size`` bytes published at ``path`` as a download's end does. False
    when it could not be stored (a pass removed its folder, left empty,
    between the folder's creation and the file's move)."""
    partial = store.new_partial()
    partial.write([b"p" * size], size)
    return keeping.publish(partial, cache_key(path), None, None)


def make_store(root: Path) -> tuple[CacheStore, Keeping, CacheUsage]:
    usage = CacheUsage()
    store = CacheStore(str(root), usage)
    store.prepare()
    return store, Keeping(store, MetaStore(store.root), ManualClock()), usage


def test_changes_on_both_sides_of_a_running_scan_are_merged(tmp_path: Path):
    """The scan is stopped half way, files are replaced, created and removed
    in folders it has and has not passed, then it goes on: the count is the
    disk's, though the scan's own totals are not."""
    root = tmp_path / "cache"
    build_cache(root, folders=6, files=5)
    store, keeping, usage = make_store(root)
    usage.scan_started()
    walk = cull.scan(store.root)
    seen = [next(walk) for _ in range(15)]
    seen_paths = {entry.path for entry in seen}
    relative = [os.path.relpath(entry.path, store.root) for entry in seen]
    unseen = [
        f"d{f}/f{n}.bin"
        for f in range(6)
        for n in range(5)
        if os.path.join(store.root, f"d{f}/f{n}.bin") not in seen_paths
    ]
    assert publish(store, keeping, "/" + relative[0], 7)  # replaced, seen
    assert publish(store, keeping, "/" + unseen[0], 9)  # replaced, not seen yet
    assert publish(store, keeping, "/" + relative[1], 11)
    keeping.gone(cache_key("/" + relative[1]))  # replaced then removed, seen
    keeping.gone(cache_key("/" + unseen[1]))  # removed, not seen yet
    assert publish(store, keeping, "/new/folder/n.bin", 13)  # new folder
    assert publish(store, keeping, f"/{relative[2].split('/')[0]}/late.bin", 17)
    assert publish(store, keeping, f"/{unseen[2].split('/')[0]}/early.bin", 19)
    victim = next(entry for entry in seen if entry.path.endswith(relative[3]))
    assert cull.remove(store.root, [victim], usage).files == 1
    newer = next(entry for entry in seen if entry.path.endswith(relative[4]))
    assert publish(store, keeping, "/" + relative[4], 21)
    assert cull.remove(store.root, [newer], usage).files == 0  # not the one chosen
    assert os.path.getsize(newer.path) == 21
    rest = list(walk)
    totals = (len(seen) + len(rest), sum(e.size for e in seen + rest))
    assert totals != disk(root)  # the scan alone would be wrong
    usage.scan_finished(
        *totals,
        lambda paths: {e.path: e.size for e in seen + rest if e.path in paths},
    )
    assert usage.totals() == disk(root)
    assert usage.counted
    assert publish(store, keeping, "/" + relative[5], 23)  # after the scan: deltas
    keeping.gone(cache_key("/" + unseen[3]))
    assert usage.totals() == disk(root)


def test_eviction_passes_racing_publishes_and_removals_end_equal_to_the_disk(
    tmp_path: Path,
):
    """Eviction passes in a thread (scan, merge, removals) while this
    thread replaces, creates and removes files, some of them the pass's
    victims: after each pass the count is the disk's."""
    root = tmp_path / "cache"
    paths = build_cache(root, folders=12, files=40)
    store, keeping, usage = make_store(root)
    cull.cull(store.root, usage=usage)
    assert usage.totals() == disk(root)
    chance = random.Random(23)
    during = 0
    for round_ in range(3):
        done = threading.Event()
        changes = 0

        def evict(done: threading.Event = done, bound: int = 60_000 - round_ * 10_000):
            try:
                cull.cull(store.root, usage=usage, max_size=bound)
            finally:
                done.set()

        worker = threading.Thread(target=evict)
        worker.start()
        while not done.is_set() or changes < 20:
            during += not done.is_set()
            path = chance.choice(paths)
            if chance.random() < 0.2:
                keeping.gone(cache_key(path))
            else:
                publish(store, keeping, path, chance.randrange(1, 300))
            changes += 1
        worker.join()
        assert usage.totals() == disk(root), round_
    assert during > 0  # some changes did race a pass
