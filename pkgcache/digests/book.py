"""What the indexes say each file must hash to: cache key -> digests,
filled when an index is stored or read (a PyPI page's ``#sha256=`` and
``hashes``, an npm document's ``integrity``, apt's ``Packages``, an Arch
``.db``), bounded in memory.

An index names its files by their path in the cache, so a download looks
its key up here when it starts. The table is compact, since one Debian
suite names tens of thousands of files: a 64-bit hash of the path maps
to the digests packed in one bytes object. An entry keeps only the
digests of its preferred algorithm: one index is one source, and its
strongest digest says what its weaker ones would. Measured with
tracemalloc at a million entries, an entry costs about 145 bytes with one
SHA-256 (the int key 32, the bytes object 72, the dict's slot and index
the rest; up to 160 as the dict's fill varies) and about 177 with one
SHA-512 (npm's), so the bound of a million entries is 150 to 180 MB. A
wrong match would need two paths with the same 64-bit hash; it would
only refuse a file, never store a bad one.

Two kinds of tables, so the IOLoop never does work in proportion to an
index:

- a distribution index (apt ``Packages``, an Arch ``.db``) is hashed and
  packed in a thread (``slot``, ``pack``) into a table of its own, which
  replaces the table of the same index (``set_index``: one dict
  assignment on the loop); a refreshed ``Packages`` thus drops the files
  it no longer names;
- registry pages and documents (PyPI, npm: a few thousand files at most)
  are merged into one shared table (``add``, or ``merge`` of what
  ``prepared`` made in a thread).

Past the bound, the oldest index tables are dropped whole, then the
oldest shared entries: a forgotten file is published on its length, as
one that no index named.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Hashable, Iterable

from pkgcache.digests.values import ALGORITHMS, SIZES, Digest, preferred
from pkgcache.store.paths import CacheKey

#: Files whose digests are remembered: 150 to 180 MB at most.
REMEMBERED = 1_000_000

Table = dict[int, bytes]


def slot(key: CacheKey) -> int:
    return int.from_bytes(
        hashlib.blake2b(key.relative.encode(), digest_size=8).digest(), "little"
    )


_HEADS = {name: bytes((at, SIZES[name])) for at, name in enumerate(ALGORITHMS)}


def pack(digests: Iterable[Digest]) -> bytes:
    """The digests of the preferred algorithm among ``digests``, packed."""
    listed = tuple(digests)
    if len(listed) == 1:
        return _HEADS[listed[0].algorithm] + listed[0].value
    best = preferred(listed)
    if best is None:
        return b""
    return b"".join(
        bytes((ALGORITHMS.index(d.algorithm), len(d.value))) + d.value
        for d in listed
        if d.algorithm == best.algorithm
    )


def unpack(packed: bytes) -> tuple[Digest, ...]:
    found = []
    at = 0
    while at < len(packed):
        algorithm, size = packed[at], packed[at + 1]
        found.append(Digest(ALGORITHMS[algorithm], packed[at + 2 : at + 2 + size]))
        at += 2 + size
    return tuple(found)


def prepared(entries: Iterable[tuple[CacheKey, tuple[Digest, ...]]]) -> Table:
    """``entries`` hashed and packed: what ``merge`` and ``set_index``
    take. Pure; call it off the IOLoop for anything large."""
    table: Table = {}
    for key, digests in entries:
        packed = pack(digests)
        if packed:
            table[slot(key)] = packed
    return table


class DigestBook:
    """Every method runs on the IOLoop and costs no more than a dict
    operation per entry of what it is handed (``add``, ``merge``) or
    O(tables) (``get``, ``set_index``)."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        #: Registry pages' and documents' entries, oldest first.
        self._shared: Table = {}
        #: One table per distribution index, oldest first.
        self._indexes: dict[Hashable, Table] = {}
        self._indexed = 0

    def __len__(self) -> int:
        return len(self._shared) + self._indexed

    def get(self, key: CacheKey) -> tuple[Digest, ...]:
        found = slot(key)
        packed = self._shared.get(found)
        if packed is None:
            for table in reversed(self._indexes.values()):
                packed = table.get(found)
                if packed is not None:
                    break
        return unpack(packed) if packed else ()

    def add(self, entries: Iterable[tuple[CacheKey, tuple[Digest, ...]]]) -> None:
        """A registry page's or document's entries (small)."""
        self.merge(prepared(entries))

    def merge(self, table: Table) -> None:
        """Entries prepared off the loop, into the shared table; a file
        named again becomes the newest."""
        shared = self._shared
        for again in table.keys() & shared.keys():
            del shared[again]
        shared.update(table)
        self._trim()

    def set_index(self, index: Hashable, table: Table) -> list[Table]:
        """The whole table of one index (``index`` names it: a refreshed
        index replaces its own table). Returns the tables dropped (the old
        one, and the oldest past the bound), for the caller to free off
        the loop."""
        dropped = []
        old = self._indexes.pop(index, None)
        if old is not None:
            self._indexed -= len(old)
            dropped.append(old)
        self._indexes[index] = table
        self._indexed += len(table)
        while len(self) > self.remembered and len(self._indexes) > 1:
            oldest = next(iter(self._indexes))
            if oldest == index:
                break
            gone = self._indexes.pop(oldest)
            self._indexed -= len(gone)
            dropped.append(gone)
        self._trim()
        return dropped

    def _trim(self) -> None:
        if len(self) <= self.remembered or not self._shared:
            return
        room = max(self.remembered - self._indexed, 0)
        excess = min(len(self._shared) - room + room // 10, len(self._shared))
        for gone in list(itertools.islice(self._shared, excess)):
            del self._shared[gone]
