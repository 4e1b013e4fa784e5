"""A download's partial file: the one object that writes, reads, publishes
and discards it.

Partial files live in ``ROOT/.partial/`` on the cache's file system, so
publishing is one ``os.replace`` and a partial file is never at a final
path. Readers get their own descriptor (a ``dup`` of the writer's), so a
publish (rename) or a discard (unlink) never cuts a reader off mid-file:
it keeps the inode it opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

from pkgcache.batches import IOV_MAX, without_first
from pkgcache.store.paths import CacheKey

#: The store's publish step: (partial path, key, mtime) -> final path.
PutInPlace = Callable[[str, CacheKey, float | None], str]


class PartialReader:
    """One reader's descriptor on a partial file; reads never move a shared
    offset (``pread``), so any number of readers share the file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PartialFile:
    """The file a download writes to until it is complete.

    Life: ``CacheStore.new_partial`` creates it; ``write`` appends batches;
    ``open_reader`` gives followers their descriptor while it is open;
    ``close`` ends writing; then exactly one of ``publish`` or ``discard``.
    """

    def __init__(self, path: str, fd: int, put_in_place: PutInPlace) -> None:
        self._put_in_place = put_in_place
        self._path = path
        self._fd = fd
        #: Bytes in the file, where readers may read.
        self.written = 0

    @property
    def open(self) -> bool:
        return self._fd >= 0

    def write(self, chunks: Sequence[bytes | memoryview], size: int) -> None:
        """Append a batch with as few ``writev`` calls as the OS allows.
        Raises ``OSError`` (disk full, I/O error); ``written`` counts what
        reached the file before it."""
        while chunks:
            done = os.writev(self._fd, chunks[:IOV_MAX])
            self.written += done
            chunks = without_first(chunks, done) if done < size else []
            size -= done

    def open_reader(self) -> PartialReader:
        """A descriptor of the reader's own; only while the file is open."""
        return PartialReader(os.dup(self._fd))

    def close(self) -> None:
        """End writing. Readers opened before keep reading."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def publish(self, key: CacheKey, mtime: float | None) -> str:
        """Move the complete file to ``key``'s final path, atomically.

        Raises ``StoreError`` (or its ``PathConflict``); the caller then
        discards the file.
        """
        self.close()
        return self._put_in_place(self._path, key, mtime)

    def discard(self) -> None:
        """Remove the file; readers holding it open keep their view."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
