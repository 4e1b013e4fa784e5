"""Keeps the ``DigestBook`` filled from the distribution indexes in the
cache: each apt ``Packages`` and Arch ``.db`` file when it is stored or
refreshed, and, once at start-up, those already on disk. Parsing runs in
a thread; only the finished entries reach the IOLoop (``add_callback``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

from tornado.ioloop import IOLoop

from pkgcache.digests.book import DigestBook
from pkgcache.digests.indexes import apt_packages, arch_database
from pkgcache.digests.values import Digest
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.digests")

Entries = list[tuple[CacheKey, tuple[Digest, ...]]]


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


def index_entries(kind: str, key: CacheKey, data: bytes) -> Entries:
    """The cache keys and digests the index at ``key`` names."""
    folder = key.segments[:-1]
    if kind == "debian":
        # Filenames are relative to the archive root, where dists/ is; a
        # flat repository's to the folder of its Packages.
        root = folder[: folder.index("dists")] if "dists" in folder else folder
        return [
            (CacheKey((*root, *parts)), digests)
            for filename, digests in apt_packages(data)
            if (parts := tuple(filename.split("/")))
            and not any(part in ("", ".", "..") for part in parts)
        ]
    if kind == "arch":
        return [
            (CacheKey((*folder, name)), digests)
            for name, digests in arch_database(data)
        ]
    return []


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
        """In a thread: parse each candidate and post its entries."""
        for kind, key in candidates:
            data = self.read(key)
            if not data:
                continue
            try:
                entries = index_entries(kind, key, data)
            except Exception:  # a malformed index names no digest
                log.exception("cannot read the index %s", key)
                continue
            if entries:
                log.info("%s names the digests of %d files", key, len(entries))
                self._loop.add_callback(self.book.add, entries)


def _on_disk(
    root: str, repositories: list[tuple[str, tuple[str, ...]]]
) -> Iterator[tuple[str, CacheKey]]:
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
                    yield kind, key
