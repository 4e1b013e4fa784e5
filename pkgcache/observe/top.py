"""The most requested and the largest files of the last day, for the
status page.

Counts are kept per half day: the current half and the one before, so the
lists cover the last 12 to 24 hours without remembering when each request
came. Each half holds at most ``PATHS_KEPT`` paths: when full, the least
counted quarter is dropped at once (a sort every ``PATHS_KEPT / 4`` new
paths: O(log n) per request amortized). The largest files are kept apart
(``LARGEST_KEPT`` paths, the smallest half dropped when full), so a big
file asked for once is not forgotten among many small popular ones.
"""

from __future__ import annotations

import heapq

HALF_DAY = 12 * 3600
PATHS_KEPT = 4096
LARGEST_KEPT = 256
SHOWN = 20
#: Paths longer than this are cut (a client's path is any length).
PATH_LIMIT = 300


class _Half:
    __slots__ = ("counts", "index", "sizes")

    def __init__(self, index: int) -> None:
        self.index = index
        self.counts: dict[str, int] = {}
        self.sizes: dict[str, int] = {}


class TopFiles:
    def __init__(
        self, kept: int = PATHS_KEPT, largest_kept: int = LARGEST_KEPT
    ) -> None:
        self.kept = kept
        self.largest_kept = largest_kept
        self._current = _Half(-1)
        self._previous = _Half(-2)

    def _half(self, now: float) -> _Half:
        index = int(now // HALF_DAY)
        if index != self._current.index:
            previous = self._current if self._current.index == index - 1 else None
            self._previous = previous or _Half(index - 1)
            self._current = _Half(index)
        return self._current

    def served(self, now: float, path: str, size: int) -> None:
        """A file at ``path`` was served, ``size`` body bytes."""
        half = self._half(now)
        path = path[:PATH_LIMIT]
        counts = half.counts
        if path not in counts and len(counts) >= self.kept:
            _drop_lowest(counts, self.kept // 4)
        counts[path] = counts.get(path, 0) + 1
        sizes = half.sizes
        if size > sizes.get(path, 0):
            if path not in sizes and len(sizes) >= self.largest_kept:
                _drop_lowest(sizes, self.largest_kept // 2)
            sizes[path] = size

    def most_requested(self, now: float, shown: int = SHOWN) -> list[tuple[str, int]]:
        """The paths asked for most, with their counts, most first."""
        merged: dict[str, int] = {}
        for half in self._halves(now):
            for path, count in half.counts.items():
                merged[path] = merged.get(path, 0) + count
        return heapq.nlargest(shown, merged.items(), key=lambda item: item[1])

    def largest(self, now: float, shown: int = SHOWN) -> list[tuple[str, int]]:
        """The largest files served, with their sizes, largest first."""
        merged: dict[str, int] = {}
        for half in self._halves(now):
            for path, size in half.sizes.items():
                merged[path] = max(merged.get(path, 0), size)
        return heapq.nlargest(shown, merged.items(), key=lambda item: item[1])

    def _halves(self, now: float) -> list[_Half]:
        """The halves within the last day of ``now``."""
        index = int(now // HALF_DAY)
        return [h for h in (self._previous, self._current) if 0 <= index - h.index <= 1]


def _drop_lowest(table: dict[str, int], how_many: int) -> None:
    for path, _value in heapq.nsmallest(how_many, table.items(), key=lambda i: i[1]):
        del table[path]
