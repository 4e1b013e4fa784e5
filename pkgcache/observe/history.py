"""What the cache did over time, per repository, for the status page: the
last hour by minute and the last 7 days by hour.

Each bucket is one row of ``WIDTH`` integers: requests by category
(``CATEGORIES``), body bytes served from the cache's own copy and from
upstream, and all requests. Recording is O(1): a bucket is found by its
index modulo the ring's length and reset when its slot last held an older
index, so nothing ever walks the history while requests are answered; the
sums over the window are kept as buckets come and go.

``dump`` and ``restore`` turn the rings into plain lists (only the buckets
that saw a request) for ``historyfile.py``, which keeps them across
restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pkgcache.observe.results import FROM_CACHE, Result

#: The categories requests are counted by on the status page.
CATEGORIES = (
    "hit",
    "miss",
    "joined",
    "revalidated",
    "refreshed",
    "stale",
    "negative",
    "pass",
    "refused",
)
#: Column of each category, then the two byte columns.
_COLUMN = {name: index for index, name in enumerate(CATEGORIES)}
FROM_CACHE_BYTES = len(CATEGORIES)
FROM_UPSTREAM_BYTES = FROM_CACHE_BYTES + 1
#: Every request, whatever its category (the per-bucket sum, kept so a
#: plot of a repository's requests reads one number per bucket).
REQUESTS = FROM_UPSTREAM_BYTES + 1
WIDTH = REQUESTS + 1

#: Results that are not categories of their own: a redirect is answered by
#: the cache alone (like a hit); a client outside ``allow`` and an answer
#: that is not the file (an upstream failure, offline) count as refused
#: (the recent trouble list says why).
_OTHER: dict[str, str] = {Result.REDIRECT: "hit"}


def category_of(result: str) -> int:
    """The column a request with ``result`` is counted in."""
    column = _COLUMN.get(result)
    if column is None:
        column = _COLUMN[_OTHER.get(result, "refused")]
    return column


MINUTE = 60
HOUR = 3600
#: Minutes of the short view, hours of the long one.
MINUTES_KEPT = 60
HOURS_KEPT = 7 * 24


class Ring:
    """``length`` buckets of ``step`` seconds, each a row of ``width``
    integers, the last ``length`` steps up to now, and their running sum.

    The sum is kept as buckets are added to and as they leave the window
    (when time moves past them), so ``totals`` costs O(1) amortized: each
    bucket is subtracted once, when it leaves."""

    __slots__ = ("_horizon", "_indexes", "_rows", "_sum", "length", "step", "width")

    def __init__(self, step: int, length: int, width: int = WIDTH) -> None:
        self.step = step
        self.length = length
        self.width = width
        self._indexes = [-1] * length
        self._rows: list[list[int] | None] = [None] * length
        #: The latest bucket index the sum is up to (-1: none yet).
        self._horizon = -1
        self._sum = [0] * width

    def add(self, now: float, *amounts: tuple[int, int]) -> None:
        """Add each ``(column, amount)`` to the bucket ``now`` falls in (a
        fresh one when its slot holds an older bucket). A time that has
        left the window already (a clock set back) is not counted."""
        index = int(now // self.step)
        self._advance(index)
        if index <= self._horizon - self.length:
            return
        slot = index % self.length
        row = self._rows[slot]
        if row is None or self._indexes[slot] != index:
            # What the slot held left the window: _advance subtracted it.
            row = self._rows[slot] = [0] * self.width
            self._indexes[slot] = index
        total = self._sum
        for column, amount in amounts:
            row[column] += amount
            total[column] += amount

    def _advance(self, last: int) -> None:
        """Move the window's end to bucket ``last``: subtract what leaves."""
        horizon = self._horizon
        if last <= horizon:
            return
        self._horizon = last
        if horizon < 0:
            return
        leaving = range(horizon - self.length + 1, last - self.length + 1)
        if len(leaving) >= self.length:
            self._sum = [0] * self.width
            return
        total = self._sum
        for index in leaving:
            slot = index % self.length
            row = self._rows[slot]
            if row is not None and self._indexes[slot] == index:
                for column, value in enumerate(row):
                    total[column] -= value

    def slots(self) -> Ring:
        """A ring with this one's slots as they are now (the rows shared:
        a row that is counted into later may be read with it)."""
        other = Ring(self.step, self.length, self.width)
        other._indexes = list(self._indexes)
        other._rows = list(self._rows)
        other._horizon = self._horizon
        other._sum = list(self._sum)
        return other

    def window(self, now: float) -> list[list[int] | None]:
        """The last ``length`` buckets up to ``now``'s, oldest first; None
        for a bucket nothing was counted in."""
        last = int(now // self.step)
        length = self.length
        # The slots rotated so the oldest bucket's comes first.
        cut = (last + 1) % length
        indexes = self._indexes[cut:] + self._indexes[:cut]
        rows = self._rows[cut:] + self._rows[:cut]
        wanted = range(last - length + 1, last + 1)
        if indexes == list(wanted):  # every bucket current: a busy ring
            return rows
        return [
            row if index == want else None
            for index, row, want in zip(indexes, rows, wanted, strict=True)
        ]

    def totals(self, now: float) -> list[int]:
        """Each column summed over the window (a copy)."""
        self._advance(int(now // self.step))
        return list(self._sum)

    def first_start(self, now: float) -> int:
        """When the window's first bucket starts (epoch seconds)."""
        return (int(now // self.step) - self.length + 1) * self.step

    def dump(self, now: float) -> list[list[int]]:
        """The buckets of the window that saw anything: ``[index, *row]``."""
        last = int(now // self.step)
        return [
            [index, *row]
            for index, row in zip(self._indexes, self._rows, strict=True)
            if row is not None and last - self.length < index <= last and any(row)
        ]

    def restore(self, buckets: Iterable[Any], now: float) -> None:
        """Put dumped buckets back; those outside the window are left out
        (ValueError if one is not a row of non-negative integers)."""
        last = int(now // self.step)
        for bucket in buckets:
            if not _is_bucket(bucket, self.width):
                raise ValueError("a bucket is not a list of non-negative integers")
            index = bucket[0]
            if last - self.length < index <= last:
                slot = index % self.length
                self._indexes[slot] = index
                self._rows[slot] = list(bucket[1:])
        self._horizon = last
        rows = [row for row in self.window(now) if row is not None]
        self._sum = [sum(column) for column in zip(*rows, strict=True)] or [
            0
        ] * self.width


def _is_bucket(bucket: Any, width: int) -> bool:
    return (
        isinstance(bucket, list)
        and len(bucket) == width + 1
        and all(type(value) is int and value >= 0 for value in bucket)
    )


class Series:
    """One repository's (or all of them together) two rings."""

    __slots__ = ("hours", "minutes")

    def __init__(self) -> None:
        self.minutes = Ring(MINUTE, MINUTES_KEPT)
        self.hours = Ring(HOUR, HOURS_KEPT)

    def add(self, now: float, column: int, from_cache: int, from_upstream: int) -> None:
        amounts = (
            (column, 1),
            (REQUESTS, 1),
            (FROM_CACHE_BYTES, from_cache),
            (FROM_UPSTREAM_BYTES, from_upstream),
        )
        self.minutes.add(now, *amounts)
        self.hours.add(now, *amounts)

    def dump(self, now: float) -> dict[str, list[list[int]]]:
        return {"minutes": self.minutes.dump(now), "hours": self.hours.dump(now)}

    def slots(self) -> Series:
        """``Ring.slots`` of both rings."""
        other = Series()
        other.minutes = self.minutes.slots()
        other.hours = self.hours.slots()
        return other

    def restore(self, data: Any, now: float) -> None:
        if not isinstance(data, dict):
            raise ValueError("a series is not an object")
        self.minutes.restore(data.get("minutes", []), now)
        self.hours.restore(data.get("hours", []), now)


class History:
    """Per repository and for all requests together; ``record`` is called
    once per answered request."""

    def __init__(self) -> None:
        self.total = Series()
        self.repositories: dict[str, Series] = {}

    def record(self, now: float, repository: str, result: str, served: int) -> None:
        """One request answered with ``result``, ``served`` body bytes.
        ``repository`` "-": under none (counted in the total only)."""
        column = category_of(result)
        from_cache = served if result in FROM_CACHE else 0
        from_upstream = served - from_cache
        self.total.add(now, column, from_cache, from_upstream)
        if repository != "-":
            series = self.repositories.get(repository)
            if series is None:
                series = self.repositories[repository] = Series()
            series.add(now, column, from_cache, from_upstream)

    def series(self, repository: str) -> Series | None:
        return self.repositories.get(repository)

    def dump(self, now: float, keep: Iterable[str]) -> dict[str, Any]:
        """The history as plain data, for the repositories in ``keep``
        (those still configured)."""
        return dump_parts(now, self.parts(keep))

    def parts(self, keep: Iterable[str]) -> list[tuple[str | None, Series]]:
        """The series to save: the total (named None), then those of the
        repositories in ``keep``, their slots copied (``Series.slots``).
        Taken on the IOLoop; ``dump_parts`` may then run in another thread:
        a row counted into meanwhile is read with some of a request's
        counts at worst."""
        wanted = set(keep)
        return [(None, self.total.slots())] + [
            (name, series.slots())
            for name, series in self.repositories.items()
            if name in wanted
        ]

    def restore(self, data: Any, now: float, keep: Iterable[str]) -> None:
        """Take a ``dump`` back (raises ValueError on anything else); only
        repositories in ``keep`` are kept."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a history of version 1")
        repositories = data.get("repositories", {})
        if not isinstance(repositories, dict):
            raise ValueError("repositories is not an object")
        total = Series()
        total.restore(data.get("total", {}), now)
        restored: dict[str, Series] = {}
        wanted = set(keep)
        for name, dumped in repositories.items():
            if name in wanted:
                series = restored[name] = Series()
                series.restore(dumped, now)
        self.total = total
        self.repositories = restored

    def names(self) -> Iterator[str]:
        return iter(self.repositories)


def dump_parts(now: float, parts: list[tuple[str | None, Series]]) -> dict[str, Any]:
    """``History.dump`` of the series ``History.parts`` gave."""
    data: dict[str, Any] = {"version": 1, "repositories": {}}
    for name, series in parts:
        if name is None:
            data["total"] = series.dump(now)
        else:
            data["repositories"][name] = series.dump(now)
    return data
