"""The check of one download's bytes against its expected digest, made as
the bytes arrive.

Hashing runs on one thread of its own (``HASHING``), never on the IOLoop:
hashlib releases the GIL for large buffers, so a gigabyte-per-second
download costs the loop nothing but a queue put per batch. One thread
keeps every download's batches in order; it hashes faster than one core
can receive, and the batches it holds are already in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Sequence

from pkgcache.digests.values import Digest, preferred

HASHING = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="pkgcache-hash"
)


class DigestCheck:
    """Hashes a stream with the preferred expected digest's algorithm."""

    def __init__(self, expected: Sequence[Digest]) -> None:
        chosen = preferred(tuple(expected))
        assert chosen is not None
        self.expected = chosen
        self._hash = hashlib.new(chosen.algorithm)
        self._last: concurrent.futures.Future[None] | None = None

    def feed(self, chunks: Sequence[bytes]) -> None:
        """Queue these bytes, after those fed before."""
        if chunks:
            self._last = HASHING.submit(self._update, tuple(chunks))

    def _update(self, chunks: tuple[bytes, ...]) -> None:
        for chunk in chunks:
            self._hash.update(chunk)

    async def actual(self) -> Digest:
        """The digest of everything fed, once the thread has hashed it."""
        if self._last is not None:
            await asyncio.wrap_future(self._last)
        return Digest(self.expected.algorithm, self._hash.digest(), "computed")

    async def matches(self) -> bool:
        return (await self.actual()).value == self.expected.value
