"""How each upstream source has been answering, for the status page: its
last success, last failure and why, its error rate over the last hour
(``history.Ring`` of minutes: attempts and failures) and its time to first
byte (a bounded sample of the latest attempts).

Sources are keyed as they are shown (``settings.display_source``: no
credentials). At most ``SOURCES_KEPT`` are tracked; past that, the one
heard of least recently is forgotten, so a registry whose documents name
ever new hosts cannot grow this without bound.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pkgcache.observe.history import MINUTE, Ring
from pkgcache.observe.redact import redact

SOURCES_KEPT = 512
#: First-byte times kept per source (the mean and p95 are taken over them).
SAMPLE = 200
#: Outcomes that say the source works: it gave the file, confirmed a copy,
#: said it has no such file, or the cache refused what it offered.
GOOD_OUTCOMES = frozenset(("complete", "not_modified", "not_found", "too_large"))
#: An error rate over the hour at which a source is shown as failing.
FAILING_RATE = 0.5
_ATTEMPTS, _FAILURES = 0, 1


class SourceRecord:
    __slots__ = (
        "attempts",
        "first_byte",
        "last_failed",
        "last_failure",
        "last_reason",
        "last_success",
    )

    def __init__(self) -> None:
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_reason = ""
        #: Whether the latest attempt failed.
        self.last_failed = False
        self.attempts = Ring(MINUTE, 60, width=2)
        self.first_byte: deque[float] = deque(maxlen=SAMPLE)

    def summary(self, now: float) -> dict[str, Any]:
        attempts, failures = self.attempts.totals(now)
        rate = failures / attempts if attempts else None
        times = sorted(self.first_byte)
        return {
            "last_success": self.last_success,
            "last_failure": self.last_failure,
            "last_failure_reason": self.last_reason,
            "attempts_last_hour": attempts,
            "failures_last_hour": failures,
            "error_rate": None if rate is None else round(rate, 3),
            "first_byte_mean": round(sum(times) / len(times), 4) if times else None,
            "first_byte_p95": _p95(times),
            "failing": self.last_failed or (rate is not None and rate >= FAILING_RATE),
        }


def _p95(ordered: list[float]) -> float | None:
    """The 95th percentile of sorted values (nearest rank)."""
    if not ordered:
        return None
    rank = max(0, -(-95 * len(ordered) // 100) - 1)
    return round(ordered[rank], 4)


class SourceBoard:
    def __init__(self, kept: int = SOURCES_KEPT) -> None:
        self.kept = kept
        self.sources: dict[str, SourceRecord] = {}

    def attempt(
        self,
        now: float,
        source: str,
        outcome: str,
        reason: str,
        first_byte: float | None,
    ) -> None:
        """One attempt at ``source`` ended with ``outcome`` (``Outcome``'s
        name in lower case); ``first_byte``: seconds until its first byte
        came, None if none did."""
        record = self.sources.pop(source, None)
        if record is None:
            record = SourceRecord()
            if len(self.sources) >= self.kept:
                del self.sources[next(iter(self.sources))]
        self.sources[source] = record  # the most recently heard of last
        failed = outcome not in GOOD_OUTCOMES
        record.attempts.add(now, (_ATTEMPTS, 1), (_FAILURES, int(failed)))
        if not failed:
            record.last_success = now
            record.last_failed = False
        else:
            record.last_failure = now
            record.last_reason = redact(reason)[:300]
            record.last_failed = True
        if first_byte is not None:
            record.first_byte.append(first_byte)

    def summary(self, source: str, now: float) -> dict[str, Any]:
        """The figures of one source (empty ones if never asked)."""
        record = self.sources.get(source)
        return (record or SourceRecord()).summary(now)
