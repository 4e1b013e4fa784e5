"""What a prefetch pass asks the indexes, and what it finds there.

A ``Finder`` is pure: given the request paths clients were given lately
(``recent``) and the bodies of the indexes the pass refreshed, it names
the files to fetch (``Wanted``). The pass (``passes.py``) does the I/O:
it refreshes the indexes a finder names, reads their stored copies and
calls ``wanted`` in a worker thread, since an index can be tens of
megabytes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pkgcache.prefetch.versions import Compare


@dataclass(frozen=True)
class IndexRead:
    """An index to refresh and read: its request path, and the Accept a
    registry answers the wanted variant for."""

    path: str
    accept: str | None = None


@dataclass(frozen=True)
class Wanted:
    """A file to prefetch: its request path, what it is, and its size when
    the index says (for the budget)."""

    path: str
    package: str
    version: str
    size: int | None = None


Bodies = Mapping[IndexRead, bytes]


class Finder(Protocol):
    """One kind's reading of its indexes (``prefetch/<kind>.py``)."""

    def indexes(self, recent: Sequence[str]) -> list[IndexRead]:
        """The indexes to refresh first: those clients used."""
        ...

    def more_indexes(self, recent: Sequence[str], bodies: Bodies) -> list[IndexRead]:
        """Indexes the ones read so far point at (Debian's by-hash files).
        Asked again, with their bodies added, while it names indexes not
        tried yet (``passes.MORE_ROUNDS`` times at most)."""
        ...

    def wanted(
        self, recent: Sequence[str], bodies: Bodies, versions: int
    ) -> list[Wanted]:
        """Files of newer versions of the packages clients downloaded, at
        most ``versions`` per package, newest first."""
        ...


class RepositoryFinder:
    """The common part of the finders: the repository's prefix, and no
    second round of indexes (Debian's by-hash and rpm's repomd.xml
    override ``more_indexes``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def more_indexes(self, recent: Sequence[str], bodies: Bodies) -> list[IndexRead]:
        return []


def size_of(text: str) -> int | None:
    """A size field of an index (digits), or None when it gives none."""
    return int(text) if text.isdigit() else None


def newest(
    candidates: Sequence[Wanted], versions: int, compare: Compare
) -> list[Wanted]:
    """The files of the ``versions`` newest versions among ``candidates``
    (one package's), newest first, by the kind's ``compare``."""
    order = functools.cmp_to_key(compare)
    ordered = sorted(candidates, key=lambda wanted: order(wanted.version), reverse=True)
    kept: list[Wanted] = []
    seen: list[str] = []
    for candidate in ordered:
        if candidate.version not in seen:
            if len(seen) == versions:
                break
            seen.append(candidate.version)
        kept.append(candidate)
    return kept
