"""The check of one download's bytes against every digest expected of
them, made as the bytes arrive.

Which digests count: those the path and the repository's index give are
trusted; those the upstream's response headers give come from the sender
of the bytes themselves, so they only add checks. Every expected digest is
checked (one hash per algorithm among them), and any mismatch refuses the
file, so a sender's header can never outrank the index: bytes that match
their own ``Repr-Digest`` but not the index are refused.

Hashing runs on one thread of its own (``Hasher``, built by
``wiring.py``), never on the IOLoop: hashlib releases the GIL for large
buffers, so a gigabyte-per-second download costs the loop nothing but a
queue put per batch. One thread keeps every download's batches in order;
it hashes faster than one core can receive, and the batches it holds are
already in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pkgcache.digests.values import Digest, preferred

#: Where a digest comes from when it is not the sender's word (a
#: ``sidecar``: a checksum file the repository publishes beside the file).
TRUSTED = ("path", "index", "sidecar")


class Hasher:
    """The one hashing thread of the daemon. ``shutdown`` when it stops;
    a check fed after that is never said to match."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pkgcache-hash"
        )
        self._closed = False

    def submit(
        self, work: Callable[..., None], *args: Any
    ) -> concurrent.futures.Future[None] | None:
        """Queue ``work(*args)`` after what was queued before; None once
        shut down."""
        if self._closed:
            return None
        return self._executor.submit(work, *args)

    def check(self, expected: Sequence[Digest]) -> DigestCheck:
        return DigestCheck(expected, self)

    def shutdown(self) -> None:
        """Take no more work; what is queued still runs."""
        self._closed = True
        self._executor.shutdown(wait=False)


@dataclass(frozen=True)
class Verdict:
    """``matched``: the digest to record (the preferred trusted one, else
    the preferred header one) when every expected digest matched;
    ``mismatch``: (expected, actual) of the first that did not (trusted
    ones first), or of the preferred one when the bytes were not hashed."""

    matched: Digest | None
    mismatch: tuple[Digest, Digest] | None


def is_trusted(digest: Digest) -> bool:
    return digest.origin in TRUSTED


class DigestCheck:
    """Hashes a stream with each algorithm among ``expected`` and compares
    every expected digest."""

    def __init__(self, expected: Sequence[Digest], hasher: Hasher) -> None:
        assert expected
        trusted = [d for d in expected if is_trusted(d)]
        told = [d for d in expected if not is_trusted(d)]
        #: Trusted first, each group by preference: the order mismatches
        #: are reported in.
        self.expected = tuple(
            sorted(trusted, key=lambda d: -d.preference)
            + sorted(told, key=lambda d: -d.preference)
        )
        chosen = preferred(trusted) or preferred(told)
        assert chosen is not None
        #: What a match is recorded as.
        self.chosen = chosen
        self._hashes = {
            algorithm: hashlib.new(algorithm)
            for algorithm in dict.fromkeys(d.algorithm for d in self.expected)
        }
        self._hasher = hasher
        self._last: concurrent.futures.Future[None] | None = None
        self._abandoned = False

    def feed(self, chunks: Sequence[bytes]) -> None:
        """Queue these bytes, after those fed before: one hand-over a batch."""
        if chunks and not self._abandoned:
            queued = self._hasher.submit(self._update, tuple(chunks))
            if queued is None:
                self._abandoned = True
            else:
                self._last = queued

    def _update(self, chunks: tuple[bytes, ...]) -> None:
        hashes = tuple(self._hashes.values())
        for chunk in chunks:
            for running in hashes:
                running.update(chunk)

    async def verdict(self) -> Verdict:
        """Once the thread hashed everything fed: does it match them all?"""
        if self._last is not None:
            await asyncio.wrap_future(self._last)
        if self._abandoned:
            unknown = Digest(self.chosen.algorithm, b"", "computed")
            return Verdict(None, (self.chosen, unknown))
        for digest in self.expected:
            actual = self._hashes[digest.algorithm].digest()
            if actual != digest.value:
                computed = Digest(digest.algorithm, actual, "computed")
                return Verdict(None, (digest, computed))
        return Verdict(self.chosen, None)
