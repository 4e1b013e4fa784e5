"""What the indexes say each file must hash to: cache key -> digests,
filled when an index is stored or read (a PyPI page's ``#sha256=`` and
``hashes``, an npm document's ``integrity``, apt's ``Packages``, an Arch
``.db``), bounded in memory.

An index names its files by their path in the cache, so a download looks
its key up here when it starts. The table is compact, since one Debian
suite names tens of thousands of files: a 64-bit hash of the path maps
to the digests packed in one bytes object (about 140 bytes an entry). A
wrong match would need two paths with the same 64-bit hash; it would
only refuse a file, never store a bad one. Forgotten oldest first past
the bound: a forgotten file is published on its length, as one that no
index named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pkgcache.digests.values import ALGORITHMS, Digest
from pkgcache.store.paths import CacheKey

#: Files whose digests are remembered: about 140 MB at most.
REMEMBERED = 1_000_000


def _slot(key: CacheKey) -> int:
    return int.from_bytes(
        hashlib.blake2b(key.relative.encode(), digest_size=8).digest(), "little"
    )


def _pack(digests: tuple[Digest, ...]) -> bytes:
    return b"".join(
        bytes((ALGORITHMS.index(d.algorithm), len(d.value))) + d.value for d in digests
    )


def _unpack(packed: bytes) -> tuple[Digest, ...]:
    found = []
    at = 0
    while at < len(packed):
        algorithm, size = packed[at], packed[at + 1]
        found.append(Digest(ALGORITHMS[algorithm], packed[at + 2 : at + 2 + size]))
        at += 2 + size
    return tuple(found)


class DigestBook:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self._digests: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._digests)

    def get(self, key: CacheKey) -> tuple[Digest, ...]:
        packed = self._digests.get(_slot(key))
        return _unpack(packed) if packed else ()

    def add(self, entries: Iterable[tuple[CacheKey, tuple[Digest, ...]]]) -> None:
        for key, digests in entries:
            if not digests:
                continue
            slot = _slot(key)
            self._digests.pop(slot, None)  # re-added: the newest again
            self._digests[slot] = _pack(digests)
        if len(self._digests) > self.remembered:
            excess = len(self._digests) - self.remembered + self.remembered // 10
            for slot in list(self._digests)[:excess]:
                del self._digests[slot]
