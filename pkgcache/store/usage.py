"""How much the cache holds, kept as it changes, so no request walks the
disk and eviction decides from its own count (the metrics only show it)."""

from __future__ import annotations


class CacheUsage:
    """Files and bytes of complete files in the cache.

    A full scan (the first eviction pass) sets the count; publishes and
    evictions keep it up to date until the next scan replaces it.
    """

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        #: True once a full scan has counted the cache.
        self.counted = False

    def stored(self, size: int) -> None:
        self.files += 1
        self.bytes += size

    def scanned(self, files: int, size: int) -> None:
        self.files = files
        self.bytes = size
        self.counted = True

    def evicted(self, files: int, size: int) -> None:
        self.files -= files
        self.bytes -= size
