"""Keeps the ``DigestBook`` filled from the distribution indexes in the
cache: each apt ``Packages`` and Arch ``.db`` file when it is stored or
refreshed, and, once at start-up, those already on disk (oldest first, so
the newest of an index's copies wins).

Parsing, hashing and packing run in a thread, a piece of the index at a
time (``indexes.py``); the IOLoop only swaps the finished table in
(``DigestBook.set_index``: one dict assignment), and the table it
replaces is freed in the thread again. An index is all or nothing: one
that is broken, unpacks past ``MAX_UNPACKED`` or names more files than
the book remembers is logged once and names no digest.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator

from tornado.ioloop import IOLoop

from pkgcache.digests.book import DigestBook, Table, pack, slot
from pkgcache.digests.indexes import IndexRefused, apt_packages, arch_database
from pkgcache.digests.values import Digest
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.digests")

#: Entries read between two pauses of ``_GIL_PAUSE`` seconds (and one
#: after each piece unpacked).
_GIL_EVERY = 256
_GIL_PAUSE = 0.0005


def _pause() -> None:
    time.sleep(_GIL_PAUSE)


def is_index(kind: str, key: CacheKey) -> bool:
    """Might the file at ``key`` be an index naming digests, for a
    repository of ``kind``? (by-hash files are judged by their content.)"""
    name = key.segments[-1]
    if kind == "debian":
        if name.startswith("Packages") and ".diff" not in name:
            return True
        segments = key.segments
        return (
            len(segments) >= 4
            and segments[-3] == "by-hash"
            and segments[-4].startswith("binary-")
        )
    if kind == "arch":
        return not name.endswith(".sig") and (
            name.endswith(".db") or ".db.tar." in name
        )
    return False


def index_entries(
    kind: str, key: CacheKey, data: bytes, between: Callable[[], None] = lambda: None
) -> Iterator[tuple[CacheKey, tuple[Digest, ...]]]:
    """The cache keys and digests the index at ``key`` names, one at a time,
    calling ``between()`` between the pieces it unpacks. Raises
    ``IndexRefused`` (a ``ValueError``) for a broken index."""
    folder = key.segments[:-1]
    if kind == "debian":
        # Filenames are relative to the archive root, where dists/ is; a
        # flat repository's to the folder of its Packages.
        root = folder[: folder.index("dists")] if "dists" in folder else folder
        for filename, digests in apt_packages(data, between):
            if "//" in filename or "." in filename[:1] or "/." in filename:
                filename = posixpath.normpath(filename)
            parts = tuple(filename.split("/"))
            if "" not in parts and "." not in parts and ".." not in parts:
                yield CacheKey((*root, *parts)), digests
    elif kind == "arch":
        for name, digests in arch_database(data, between):
            yield CacheKey((*folder, name)), digests


def index_identity(kind: str, key: CacheKey) -> tuple[str, ...]:
    """What an index file is a copy of: its compressions and ``by-hash``
    versions are one index, whose newest reading replaces the others'."""
    segments = key.segments
    if kind == "debian" and len(segments) >= 4 and segments[-3] == "by-hash":
        return segments[:-3]
    if kind == "arch":
        return (*segments[:-1], segments[-1].split(".db", 1)[0])
    return segments[:-1]


class Indexer:
    """Feeds ``book`` from indexes; ``read(key)`` is the store's confined
    read of a cached file."""

    def __init__(
        self, book: DigestBook, read: Callable[[CacheKey], bytes | None]
    ) -> None:
        self.book = book
        self.read = read
        self._loop = IOLoop.current()

    def stored(self, kind: str, key: CacheKey) -> None:
        """A file was stored or refreshed: index it if it is an index."""
        if is_index(kind, key):
            self._loop.run_in_executor(None, self._index, [(kind, key)])

    def scan(
        self, root: str, repositories: Iterable[tuple[str, tuple[str, ...]]]
    ) -> None:
        """Index what is on disk already (at start-up), in a thread."""
        wanted = [
            (kind, prefix)
            for kind, prefix in repositories
            if kind in ("debian", "arch")
        ]
        if wanted:
            self._loop.run_in_executor(
                None, lambda: self._index(_on_disk(root, wanted))
            )

    def _index(self, candidates: Iterable[tuple[str, CacheKey]]) -> None:
        """In a thread: parse each candidate into a table and post it."""
        for kind, key in candidates:
            data = self.read(key)
            if not data:
                continue
            try:
                table = self._table(kind, key, data)
            except IndexRefused as error:
                log.warning("the index %s names no digest: %s", key, error)
                continue
            except Exception:  # a malformed index names no digest
                log.exception("cannot read the index %s", key)
                continue
            del data
            if table:
                log.info("%s names the digests of %d files", key, len(table))
                self._loop.add_callback(self._swap, index_identity(kind, key), table)

    def _table(self, kind: str, key: CacheKey, data: bytes) -> Table:
        """In a thread: the index's entries, hashed and packed. It lets the
        IOLoop's thread have the GIL every few milliseconds: otherwise
        each of the loop's system calls would wait out a whole switch
        interval (5 ms) for it, tens of them for one request."""
        bound = self.book.remembered
        table: Table = {}
        entries = index_entries(kind, key, data, _pause)
        for read, (entry, digests) in enumerate(entries):
            packed = pack(digests)
            if packed:
                table[slot(entry)] = packed
            if read % _GIL_EVERY == 0:
                _pause()
                if len(table) > bound:
                    raise IndexRefused(f"names more than {bound} files")
        if len(table) > bound:
            raise IndexRefused(f"names more than {bound} files")
        return table

    def _swap(self, index: tuple[str, ...], table: Table) -> None:
        """On the IOLoop: one assignment; what it replaced is freed in a
        thread (freeing a million entries takes tens of milliseconds)."""
        for dropped in self.book.set_index(index, table):
            self._loop.run_in_executor(None, dropped.clear)


def _on_disk(
    root: str, repositories: list[tuple[str, tuple[str, ...]]]
) -> list[tuple[str, CacheKey]]:
    """The indexes on disk, oldest first."""
    found: list[tuple[float, str, CacheKey]] = []
    for kind, prefix in repositories:
        top = os.path.join(root, *prefix)
        for folder, folders, files in os.walk(top):
            folders[:] = [
                name for name in folders if not name.startswith(".") and name != "pool"
            ]
            relative = os.path.relpath(folder, root)
            segments = () if relative == "." else tuple(relative.split(os.sep))
            for name in files:
                if name.startswith("."):
                    continue
                key = CacheKey((*segments, name))
                if is_index(kind, key):
                    try:
                        mtime = os.lstat(os.path.join(folder, name)).st_mtime
                    except OSError:
                        continue
                    found.append((mtime, kind, key))
    found.sort(key=lambda item: item[0])
    return [(kind, key) for _mtime, kind, key in found]
