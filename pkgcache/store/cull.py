"""Cull the cache: by access time, to a total size, or to free disk space.

Used by ``package-cache cull`` (cron, systemd timer; its flags are
``cli.py``'s) and by the daemon's own eviction (``eviction.py``), which
runs it in a worker thread. Problems are logged, never printed: inside the
daemon they go wherever its log goes (syslog included). Rules: the
private partial and validator folders, the lock file (``lock.py``) and
the daemon's other dot-named entries at the root are never entered or
counted, symlinks are neither followed nor removed, folders left empty
are removed (never the root), and removing a file that a client is
reading is safe: the client keeps its open file and the next request is
a fresh miss. Inside the daemon, the scan is counted and each removal
made through its ``CacheUsage``, so the count stays equal to the disk
while files are published during the pass; a victim replaced since the
scan is a newer file and is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from pkgcache.store.meta import META_FOLDER
from pkgcache.store.usage import CacheUsage

log = logging.getLogger("pkgcache.cull")


@dataclass(frozen=True)
class CachedEntry:
    path: str
    size: int
    atime: float
    #: The inode the scan saw (0: unknown); a file at the path with another
    #: one was put there since, and is not the one chosen.
    inode: int = 0


@dataclass
class CullResult:
    """What a cull removed (or would remove), and what the cache held."""

    files: int = 0
    bytes: int = 0
    folders: int = 0
    scanned_files: int = 0
    scanned_bytes: int = 0

    def __str__(self) -> str:
        return f"{self.files} files, {self.bytes} bytes, {self.folders} empty folders"


def scan(root: str) -> Iterator[CachedEntry]:
    """Every regular file under ``root``, without following symlinks, and
    nothing under a dot-named entry of the root: those are the daemon's
    own (``.partial``, ``.meta``, a lock or state file), never a cached
    file, since ``paths.py`` refuses dot names in requests."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if folder == root and entry.name.startswith("."):
                continue
            try:
                result = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(result.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(result.st_mode):
                yield CachedEntry(
                    entry.path, result.st_size, result.st_atime, result.st_ino
                )


def counted_scan(root: str, usage: CacheUsage) -> list[CachedEntry]:
    """``scan``, with its totals merged into ``usage`` with what was
    published and removed while it ran (``CacheUsage.scan_finished``)."""
    usage.scan_started()
    try:
        entries = list(scan(root))
    except BaseException:
        usage.scan_abandoned()
        raise

    def seen(paths: set[str]) -> dict[str, int]:
        return {entry.path: entry.size for entry in entries if entry.path in paths}

    usage.scan_finished(len(entries), sum(entry.size for entry in entries), seen)
    return entries


def choose(
    entries: list[CachedEntry],
    *,
    older_than: float | None = None,
    max_size: int | None = None,
    min_free: int | None = None,
    free_now: int = 0,
    now: float | None = None,
    protected: frozenset[str] = frozenset(),
) -> list[CachedEntry]:
    """Pick what to remove, least recently accessed first (pure).

    Files not accessed for ``older_than`` seconds go; then more, oldest
    first, until the cache holds at most ``max_size`` bytes and the file
    system (``free_now`` free before culling) has ``min_free`` bytes free.
    ``protected`` paths count in the total but are never picked.
    """
    now = time.time() if now is None else now
    ordered = sorted(entries, key=lambda entry: entry.atime)
    total = sum(entry.size for entry in ordered)
    free = free_now
    chosen: list[CachedEntry] = []
    for entry in ordered:
        if entry.path in protected:
            continue
        too_old = older_than is not None and now - entry.atime > older_than
        too_big = max_size is not None and total > max_size
        too_full = min_free is not None and free < min_free
        if not (too_old or too_big or too_full):
            break
        chosen.append(entry)
        total -= entry.size
        free += entry.size
    return chosen


def remove(
    root: str, victims: list[CachedEntry], usage: CacheUsage | None = None
) -> CullResult:
    """Delete ``victims`` and the folders they leave empty, each counted
    by ``usage`` when given (the daemon's)."""
    result = CullResult()
    folders: set[str] = set()
    for victim in victims:
        try:
            if usage is None:
                removed = _remove_victim(victim)
            else:
                removed = usage.change(victim.path, partial(_remove_victim, victim))
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("cannot remove %s: %s", victim.path, error.strerror)
            continue
        if removed is None:
            continue
        result.files += 1
        result.bytes += removed
        folders.add(os.path.dirname(victim.path))
        _remove_record(root, victim.path)
    for folder in sorted(folders, key=len, reverse=True):
        while folder != root and folder.startswith(root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break
            result.folders += 1
            folder = os.path.dirname(folder)
    return result


def _remove_victim(victim: CachedEntry) -> int | None:
    """Unlink the file the scan chose and return its size; None, leaving
    it, when the path now holds another file (published since the scan)
    or no regular file."""
    result = os.lstat(victim.path)
    if not stat.S_ISREG(result.st_mode) or victim.inode not in (0, result.st_ino):
        return None
    os.unlink(victim.path)
    return result.st_size


def _remove_record(root: str, path: str) -> None:
    """A removed file's validators go with it (``meta.py``)."""
    relative = os.path.relpath(path, root)
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(root, META_FOLDER, relative + ".json"))


def free_bytes(root: str) -> int:
    usage = os.statvfs(root)
    return usage.f_bavail * usage.f_frsize


def cull(
    root: str,
    *,
    older_than: float | None = None,
    max_size: int | None = None,
    min_free: int | None = None,
    dry_run: bool = False,
    reserve: int = 0,
    reserved_path: str | None = None,
    protected: frozenset[str] = frozenset(),
    usage: CacheUsage | None = None,
    now: float | None = None,
) -> tuple[CullResult, list[CachedEntry]]:
    """Scan, choose and (unless ``dry_run``) remove. Blocking: the daemon
    runs it in a worker thread. With no bound given it only counts.

    ``reserve`` bytes are about to be stored at ``reserved_path``: room is
    made for them, unless the scan found that file already stored.
    ``protected`` files are never chosen (what prefetch fetched, until a
    client had the chance to use it).
    ``usage`` (the daemon's) is counted by the scan and the removals;
    ``now`` is the time ``older_than`` counts back from (the daemon's
    clock; the system's by default).
    """
    root = os.path.realpath(root)
    entries = list(scan(root)) if usage is None else counted_scan(root, usage)
    if reserved_path is not None and any(e.path == reserved_path for e in entries):
        reserve = 0
    victims = choose(
        entries,
        protected=protected,
        older_than=older_than,
        max_size=None if max_size is None else max(0, max_size - reserve),
        min_free=None if min_free is None else min_free + reserve,
        free_now=free_bytes(root) if min_free is not None else 0,
        now=now,
    )
    if dry_run:
        result = CullResult(len(victims), sum(v.size for v in victims))
    else:
        result = remove(root, victims, usage)
    result.scanned_files = len(entries)
    result.scanned_bytes = sum(entry.size for entry in entries)
    return result, victims
