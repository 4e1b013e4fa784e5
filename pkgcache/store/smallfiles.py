"""Keep the bytes of small cached files in memory.

A small hit is bound by per-request work, and opening and reading the
file is a large part of it. A new download replaces a file (a new inode),
so an entry is valid while the stat the hit already did shows the same
inode, size and mtime. Another process may still change a file in place
(the cache doubles as a DISTDIR): a file read from disk must be the one
that stat describes, or the read fails (``FileChanged``), since the
caller's headers (length, ETag) come from that stat.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable

from pkgcache.store.cache import FileChanged, identity

#: Opens the file for reading and returns a descriptor (the store's
#: confined open, which refuses a file that is not the looked-up one).
Opener = Callable[[], int]

#: Files up to this size are kept in memory...
SMALL_FILE = 64 * 1024
#: ...up to this many bytes in all, least recently used dropped first.
MEMORY_BUDGET = 32 * 1024 * 1024


class SmallFiles:
    """An LRU of small file contents, validated by the caller's stat."""

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[str, tuple[tuple[int, int, int, int], bytes]] = (
            OrderedDict()
        )
        self._notes: dict[str, str] = {}

    @staticmethod
    def fits(result: os.stat_result) -> bool:
        return result.st_size <= SMALL_FILE

    def read(
        self,
        path: str,
        result: os.stat_result,
        open_file: Opener,
        describe: Callable[[], str | None] | None = None,
    ) -> bytes:
        """The whole file at ``path`` (whose stat is ``result``): from
        memory when the entry is that same inode, else read through
        ``open_file`` (the store's confined open). ``describe()``, asked
        only when the file is read from disk, gives a note kept with the
        bytes (``note``): what the access line says of the file.

        The bytes returned are always ``result.st_size`` long and of the
        file ``result`` describes, since the caller's headers come from
        ``result``. ``open_file`` must refuse another file (the store's
        raises ``FileChanged`` for another inode, size or mtime); bytes of
        another length raise ``FileChanged`` here. The caller answers
        that as a file culled meanwhile (503), or looks the path up again
        and takes the new stat with the new bytes."""
        seen = identity(result)
        entry = self._entries.get(path)
        if entry is not None and entry[0] == seen:
            self._entries.move_to_end(path)
            return entry[1]
        fd = open_file()
        try:
            data = os.read(fd, result.st_size + 1)
        finally:
            os.close(fd)
        if len(data) != result.st_size:
            raise FileChanged(f"{path} changed while read")
        self._forget(path)
        self._entries[path] = (seen, data)
        if describe is not None:
            note = describe()
            if note is not None:
                self._notes[path] = note
        self.size += len(data)
        while self.size > self.budget:
            self._forget(next(iter(self._entries)))
        return data

    def note(self, path: str, result: os.stat_result) -> str | None:
        """The note kept with the bytes of this very file, if any."""
        entry = self._entries.get(path)
        if entry is None or entry[0] != identity(result):
            return None
        return self._notes.get(path)

    def _forget(self, path: str) -> None:
        self._notes.pop(path, None)
        entry = self._entries.pop(path, None)
        if entry is not None:
            self.size -= len(entry[1])
