"""Where one download keeps its bytes: its partial file (``store``'s),
and a ``MemoryCopy`` when the cache cannot take them, with one
``Storage`` value saying which, so a download carries no flags about it.

A write that fails turns the file into ``FILE_FAILED``: followers read
what it holds, and the whole body moves to memory while it fits.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable
from typing import BinaryIO

from pkgcache.batches import without_first
from pkgcache.fetching.bodyfile import BodyFile
from pkgcache.fetching.memorycopy import MemoryCopy
from pkgcache.store.cache import CacheStore
from pkgcache.store.partial import PartialFile
from pkgcache.store.paths import CacheKey


class Storage(enum.Enum):
    #: Its partial file, published when complete.
    FILE = "file"
    #: Its partial file for followers, and a ``MemoryCopy`` for a client
    #: after the end; never published (``do_not_keep``, a ``pass`` file).
    FILE_NOT_KEPT = "file, not kept"
    #: A ``MemoryCopy`` only: no partial file (a pass-through, or none
    #: could be created).
    MEMORY = "memory"
    #: A write to the partial file failed: followers read what it holds;
    #: everything is in a ``MemoryCopy`` while the whole fits.
    FILE_FAILED = "file failed"

    @classmethod
    def first(cls, stored: bool, kept: bool) -> Storage:
        """Where a download starts keeping its bytes: ``stored`` False is
        a pass-through; ``kept`` False a file never published."""
        if not stored:
            return cls.MEMORY
        return cls.FILE if kept else cls.FILE_NOT_KEPT


class DownloadBody:
    """The bytes of one download, stored as its ``storage`` says.
    ``limit()`` bounds the memory copy (``client_buffer``)."""

    def __init__(
        self,
        key: CacheKey,
        store: CacheStore,
        storage: Storage,
        limit: Callable[[], int],
    ) -> None:
        self.key = key
        self.storage = storage
        self.partial: PartialFile | None = None
        self.memory: MemoryCopy | None = None
        self._store = store
        self._limit = limit

    @property
    def written(self) -> int:
        """Bytes in the partial file, where followers may read."""
        return self.partial.written if self.partial is not None else 0

    @property
    def publishable(self) -> bool:
        return self.storage is Storage.FILE and self.partial is not None

    def open(self) -> None:
        """The head was accepted: create the partial file (or fall back to
        memory when the cache cannot)."""
        if self.storage is not Storage.MEMORY:
            try:
                self.partial = self._store.new_partial()
            except OSError as error:
                self._store.storage_failed(f"create a file for {self.key}", error)
                self.storage = Storage.MEMORY
        if self.storage is not Storage.FILE:
            self.memory = MemoryCopy(self._limit)

    def not_kept(self, nothing_sent_yet: bool) -> bool:
        """Never publish; keep a memory copy too when it can still be
        whole. False when it was not going to be published anyway."""
        if self.storage is not Storage.FILE:
            return False
        self.storage = Storage.FILE_NOT_KEPT
        if self.memory is None and nothing_sent_yet:
            self.memory = MemoryCopy(self._limit)
        return True

    def add(self, chunks: list[bytes], size: int) -> None:
        """Keep a batch: in memory (when copied there) and in the file."""
        if self.memory is not None:
            self.memory.add(chunks)
        if self.storage not in (Storage.FILE, Storage.FILE_NOT_KEPT):
            return
        assert self.partial is not None
        before = self.partial.written
        try:
            self.partial.write(chunks, size)
        except OSError as error:
            self.storage = Storage.FILE_FAILED
            self._store.storage_failed(f"write {self.key} to the cache", error)
            self._move_to_memory(chunks, self.partial.written - before)

    def _move_to_memory(self, chunks: list[bytes], stored: int) -> None:
        """A write failed: keep what the file holds and the rest of the
        batch in memory instead, if the whole fits."""
        assert self.partial is not None
        written = self.partial.written
        if written > self._limit():
            return
        reader = self.partial.open_reader()
        try:
            start = reader.read(0, written) if written else b""
        except OSError:
            return
        finally:
            reader.close()
        if len(start) == written:
            self.memory = MemoryCopy(self._limit, start)
            self.memory.add(without_first(chunks, stored))

    def whole(self) -> bytes | None:
        """Every byte kept, from the partial file or from memory."""
        if self.partial is not None and self.storage is not Storage.FILE_FAILED:
            reader = self.partial.open_reader()
            try:
                return reader.read(0, self.partial.written)
            except OSError:
                return None
            finally:
                reader.close()
        return self.memory.whole() if self.memory is not None else None

    def open_whole(self, tail: list[bytes]) -> BinaryIO | None:
        """Every byte kept, then ``tail`` (a batch held back), as a
        seekable file (``BodyFile``: the partial file is not read into
        memory); None when the bytes are kept nowhere whole."""
        rest = b"".join(tail)
        partial = self.partial
        if partial is not None and self.storage is not Storage.FILE_FAILED:
            reader = partial.open_reader()
            return io.BufferedReader(BodyFile(reader, partial.written, rest))
        whole = self.memory.whole() if self.memory is not None else None
        return None if whole is None else io.BytesIO(whole + rest)

    def replace(self, body: bytes) -> None:
        """``body`` in place of what was kept (a rewritten page): in a new
        partial file, or in memory when the cache cannot take it."""
        if self.memory is not None:
            self.memory.replace(body)
        if self.partial is None or self.storage is Storage.FILE_FAILED:
            return
        self.partial.discard()
        self.partial = None
        try:
            self.partial = self._store.new_partial()
            self.partial.write([body], len(body))
        except OSError as error:
            self._store.storage_failed(f"write {self.key} to the cache", error)
            self.storage = Storage.FILE_FAILED
            self.memory = MemoryCopy(self._limit)
            self.memory.replace(body)

    def close(self) -> None:
        """No more bytes: end writing (readers keep reading)."""
        if self.partial is not None:
            self.partial.close()
