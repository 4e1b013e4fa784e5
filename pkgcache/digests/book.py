"""What the indexes say each file must hash to: cache key -> digests,
filled when an index is stored or read (a PyPI page's ``#sha256=`` and
``hashes``, an npm document's ``integrity``), bounded in memory.

An index names its files by their path in the cache, so a download looks
its key up here when it starts. Forgotten oldest first past the bound:
a forgotten file is published on its length, as one that no index named.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from pkgcache.digests.values import Digest
from pkgcache.store.paths import CacheKey

#: Files whose digests are remembered (about 200 bytes each).
REMEMBERED = 500_000


class DigestBook:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self._digests: OrderedDict[CacheKey, tuple[Digest, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._digests)

    def get(self, key: CacheKey) -> tuple[Digest, ...]:
        return self._digests.get(key, ())

    def add(self, entries: Iterable[tuple[CacheKey, tuple[Digest, ...]]]) -> None:
        for key, digests in entries:
            if not digests:
                continue
            self._digests[key] = digests
            self._digests.move_to_end(key)
        while len(self._digests) > self.remembered:
            self._digests.popitem(last=False)
