"""How much the cache holds, kept as it changes, so no request walks the
disk and eviction decides from its own count (the metrics and the status
page show it).

"The disk" is what a walk of the cache folder finds: regular files (not
symlinks, not folders), without the daemon's own dot-named entries at the
root (``.partial``, ``.meta`` and the like; ``cull.scan`` skips them, and
``paths.py`` refuses every dot name, so no request reaches one). A
registry page (a stored PyPI page, an npm document) is a file like any
other; the small records in ``.meta`` are not counted.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Rounds of looking up, outside the lock, what a scan saw of the paths
#: changed while it ran, before the last look-up is done under the lock.
_LOOKUP_ROUNDS = 3


def measure(path: str) -> int | None:
    """The size of the regular file at ``path`` as a scan counts it (its
    own stat, symlinks not followed); None when a scan would count nothing
    there."""
    try:
        result = os.lstat(path)
    except OSError:
        return None
    return result.st_size if stat.S_ISREG(result.st_mode) else None


class CacheUsage:
    """Files and bytes of complete files in the cache, equal to the disk.

    **One owner of every change.** The daemon creates, replaces and removes
    files under the cache folder only through ``change(path, operation)``
    (the publish step and the removal of a copy gone upstream in
    ``cache.py``, eviction's removals in ``cull.py``). Under one lock it
    measures the path, carries the operation out and measures again, and
    counts the difference: a refreshed file counts its old size out and
    its new one in, a file removed counts out what it held, an operation
    that failed or found nothing to do counts nothing. The IOLoop (publish)
    and an eviction pass's worker thread (removals) both change the cache,
    so the lock makes each measure-act-measure one step; it is held for a
    few system calls.

    **Scans.** A full scan (``cull.scan`` on the worker thread, the first
    one at start-up) counts the cache from scratch, so changes made by
    hand are caught up with. It runs without the lock while files keep
    being published and removed, and one cannot tell whether the scan
    passed a path before or after it changed. So ``scan_started`` opens a
    journal of every path changed from then on, with the size it has after
    its last change (None: nothing there). ``scan_finished`` takes the
    scan's totals and its sizes of those paths, and counts::

        scan totals - what the scan saw at each journalled path
                    + what each journalled path holds now

    under the lock, with the journal closed in the same step. A path that
    no change touched while the scan ran is as the scan saw it; a path
    that one did is as the journal says, whenever the scan passed it,
    before, after or never. The journal holds only the paths changed
    during one scan. Until the first scan ends, ``counted`` is False and
    the count holds only the changes since the start.

    Changes made behind the daemon's back (a file removed by hand) are
    wrong in the count until the next scan: every eviction pass scans.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = 0
        self.bytes = 0
        #: True once a full scan has counted the cache.
        self.counted = False
        #: Paths changed since a scan started: their size now (None: none).
        self._journal: dict[str, int | None] | None = None

    def totals(self) -> tuple[int, int]:
        """Files and bytes, read together (another thread may be counting
        a removal)."""
        with self._lock:
            return self.files, self.bytes

    def change(self, path: str, operation: Callable[[], T]) -> T:
        """Carry out ``operation``, which creates, replaces or removes the
        file at ``path`` (an absolute path under the cache root, as the
        scan spells it), and count what it did. Its result or exception is
        passed on; the file is measured either way."""
        with self._lock:
            before = measure(path)
            try:
                return operation()
            finally:
                after = measure(path)
                self._count(before, after)
                if self._journal is not None:
                    self._journal[path] = after

    def _count(self, before: int | None, after: int | None) -> None:
        self.files += (after is not None) - (before is not None)
        self.bytes += (after or 0) - (before or 0)

    def scan_started(self) -> None:
        """A full scan begins (before it reads the first folder)."""
        with self._lock:
            self._journal = {}

    def scan_abandoned(self) -> None:
        """The scan failed: the count goes on from the changes alone."""
        with self._lock:
            self._journal = None

    def scan_finished(
        self,
        files: int,
        size: int,
        seen: Callable[[set[str]], dict[str, int]],
    ) -> None:
        """The scan counted ``files`` files of ``size`` bytes; ``seen(paths)``
        gives the size it counted for each of ``paths`` it saw (a pass over
        its entries, so it is asked outside the lock: only the paths that
        changed since the last round are asked under it)."""
        found: dict[str, int] = {}
        asked: set[str] = set()
        for _round in range(_LOOKUP_ROUNDS):
            with self._lock:
                assert self._journal is not None, "no scan was started"
                wanted = self._journal.keys() - asked
                if not wanted:
                    self._merge(files, size, found)
                    return
            found.update(seen(wanted))
            asked |= wanted
        with self._lock:
            assert self._journal is not None, "no scan was started"
            found.update(seen(self._journal.keys() - asked))
            self._merge(files, size, found)

    def _merge(self, files: int, size: int, found: dict[str, int]) -> None:
        """The scan's totals with each journalled path as it is now (under
        the lock)."""
        assert self._journal is not None
        for path, now in self._journal.items():
            was = found.get(path)
            files += (now is not None) - (was is not None)
            size += (now or 0) - (was or 0)
        self.files, self.bytes = files, size
        self.counted = True
        self._journal = None
