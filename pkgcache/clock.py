"""The daemon's one source of time, built by ``wiring.py`` and passed in.

Freshness, negative answers, stale limits and the start time all ask a
``Clock`` rather than the ``time`` module, so that a test can move time on
instead of sleeping past ``fresh_for``: ``ManualClock`` in-process, and
for a daemon started as a process, ``Clock.from_environment`` (see there).
"""

from __future__ import annotations

import os
import time

#: Names a file holding seconds to add to the daemon's clock (a test seam).
CLOCK_OFFSET_ENV = "PKGCACHE_CLOCK_OFFSET_FILE"


class Clock:
    """Wall time (``now``: for dates and freshness that survives restarts)
    and monotonic time (``monotonic``: for intervals within one run)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    @staticmethod
    def from_environment() -> Clock:
        """The real clock; moved on by the offset in the file named by
        ``PKGCACHE_CLOCK_OFFSET_FILE`` when the environment names one
        (tests of a daemon process move its time that way)."""
        path = os.environ.get(CLOCK_OFFSET_ENV)
        return OffsetFileClock(path) if path else Clock()


class ManualClock(Clock):
    """A clock that moves only when told (in-process tests)."""

    def __init__(self, start: float = 1_000_000_000.0) -> None:
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._monotonic += seconds


class OffsetFileClock(Clock):
    """The real clock plus the seconds written in a file (re-read whenever
    the file's modification time changes; a missing or bad file adds 0)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stamp: int | None = None
        self._offset = 0.0

    def _current_offset(self) -> float:
        try:
            stamp = os.stat(self._path).st_mtime_ns
        except OSError:
            return 0.0
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                with open(self._path) as file:
                    self._offset = float(file.read().strip() or 0)
            except (OSError, ValueError):
                self._offset = 0.0
        return self._offset

    def now(self) -> float:
        return time.time() + self._current_offset()

    def monotonic(self) -> float:
        return time.monotonic() + self._current_offset()
