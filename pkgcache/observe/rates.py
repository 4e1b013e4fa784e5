"""Requests and bytes per second over the last minute, for the status
page's "now": a ring of one-second buckets (``history.Ring``), so counting
is O(1) and reading sums 60 rows.

Bytes are counted when they are known in full: bytes out when a request
ends, bytes in when an upstream attempt ends, so a long download shows in
the minute it finished.
"""

from __future__ import annotations

from pkgcache.observe.history import Ring

#: Seconds the rates are taken over.
WINDOW = 60
_REQUESTS, _OUT, _IN = 0, 1, 2


class Rates:
    """Counted with the monotonic clock's seconds."""

    def __init__(self) -> None:
        self._ring = Ring(1, WINDOW, width=3)

    def request(self, now: float, sent: int) -> None:
        self._ring.add(now, (_REQUESTS, 1), (_OUT, sent))

    def received(self, now: float, size: int) -> None:
        if size:
            self._ring.add(now, (_IN, size))

    def per_second(self, now: float) -> dict[str, float]:
        """Over the last ``WINDOW`` seconds, this one included."""
        requests, sent, received = self._ring.totals(now)
        return {
            "requests": round(requests / WINDOW, 2),
            "bytes_out": round(sent / WINDOW),
            "bytes_in": round(received / WINDOW),
        }
