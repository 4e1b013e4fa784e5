"""The steps a download takes between its last byte and its end, as the
fetch plan names them: ``Verify`` (the bytes against every digest known
for the file), ``Rewrite`` (a registry page made into the cache's own,
off the IOLoop) and ``Inspect`` (a check that needs the whole file at
once: a Go module zip's ``h1:``). Each step may turn a COMPLETE fetch
into a failure; the download publishes only what every step let through.

A step sees the download through ``Finishable``: the batch it holds
back, the whole body and a way to put a new body in place. Steps run in
the order the plan names them, each only while the fetch is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from tornado.ioloop import IOLoop

from pkgcache.digests.check import DigestCheck, Hasher
from pkgcache.digests.learnt import from_headers, from_path
from pkgcache.digests.values import Digest
from pkgcache.fetching.responses import FetchResult, Outcome, ResponseHead
from pkgcache.settings import display_source
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.download")


class Finishable(Protocol):
    """What a finishing step may do with its download."""

    key: CacheKey
    head: ResponseHead | None
    #: The digest the complete file matched (set by ``Verify``).
    verified: Digest | None
    #: (expected, actual) when the bytes did not match.
    mismatch: tuple[Digest, Digest] | None

    def take_batch(self) -> list[bytes]:
        """The batch not yet stored or sent, taken out of reach."""
        ...

    def put_back(self, chunks: list[bytes]) -> None:
        """Return a batch taken with ``take_batch``, to be stored and sent."""

    def hand_on(self, chunks: list[bytes]) -> None:
        """Store and send a batch now."""

    def whole_body(self) -> bytes | None:
        """Every byte received (from the partial file or memory)."""
        ...

    def replace_body(self, body: bytes) -> bool:
        """Put ``body`` in place of what was received; False when it
        cannot be kept anywhere."""
        ...

    def open_whole(self, tail: list[bytes]) -> BinaryIO | None:
        """Every byte kept, then ``tail``, as a seekable file the caller
        closes; None when the body is kept nowhere whole."""
        ...


@dataclass(frozen=True)
class Verify:
    """Check the bytes against ``expected`` (what the repository's index
    says), the digests the path names and those the response's headers
    state. Index and path are trusted; a header only adds a check."""

    expected: tuple[Digest, ...] = ()


@dataclass(frozen=True)
class Rewrite:
    """Replace the whole body by ``rewrite(body, head)`` before it is
    stored or served; it raises ``ValueError`` for a page that is not
    what its type says. Clients of such a download wait for its end."""

    rewrite: Callable[[bytes, ResponseHead], bytes]


#: What an ``Inspect`` judge says: the file passes (None, or the digest
#: of its bytes it vouches for, recorded as a ``Verify`` match is), the
#: (expected, actual) digests that disagree, or why the file is refused.
Judgement = Digest | tuple[Digest, Digest] | str | None


@dataclass(frozen=True)
class Inspect:
    """A check that needs the whole file at once (a Go module zip's
    ``h1:`` hashes the files inside the zip). ``judge(file)`` is awaited
    once every byte arrived, with the body as a seekable binary file that
    it must not close, and does its heavy work off the IOLoop. Meanwhile
    the last batch is held back, as ``Verify`` holds it, so that no client
    ever has the whole of a file it refuses."""

    judge: Callable[[BinaryIO], Awaitable[Judgement]]


Step = Verify | Rewrite | Inspect


class Verification:
    """A ``Verify`` step of one download: hashing starts with the head and
    goes on batch by batch (``feed``), so the verdict waits only for the
    last batch."""

    def __init__(self, step: Verify, repository: str, hasher: Hasher) -> None:
        self.step = step
        self.repository = repository
        self.hasher = hasher
        self._check: DigestCheck | None = None

    def begin(self, key: CacheKey, head: ResponseHead) -> None:
        expected = (*self.step.expected, *from_path(key), *from_headers(head.headers))
        self._check = self.hasher.check(expected) if expected else None

    def feed(self, chunks: Sequence[bytes]) -> None:
        if self._check is not None:
            self._check.feed(chunks)  # one hand-over a batch, not a chunk

    async def finish(self, download: Finishable, result: FetchResult) -> FetchResult:
        """Hold the last batch until the digests say whether the bytes are
        the file. A mismatch with any expected digest drops that batch (no
        client and no follower ever has the whole body) and fails."""
        check = self._check
        if check is None:
            return result
        held = download.take_batch()
        check.feed(held)
        verdict = await check.verdict()
        if verdict.mismatch is None:
            download.verified = verdict.matched
            download.put_back(held)
            return result
        download.mismatch = expected, actual = verdict.mismatch
        log.error(
            "digest mismatch: %s of repository %s from %s: expected %s (%s), got %s;"
            " not stored",
            download.key,
            self.repository,
            display_source(result.source or "-"),
            expected,
            expected.origin,
            actual,
        )
        return FetchResult(
            Outcome.FAILED,
            f"digest mismatch: expected {expected}",
            result.source,
            result.head,
        )


async def rewritten(
    step: Rewrite, download: Finishable, result: FetchResult
) -> FetchResult:
    """A registry page arrived whole: rewrite it (in a thread: a big page
    takes a while to parse) and put the new body in place of the old, so
    that what is stored and served is the rewritten page."""
    last = download.take_batch()
    if last:
        download.hand_on(last)
    raw = download.whole_body()
    head = download.head
    if raw is None or head is None:
        return FetchResult(
            Outcome.FAILED, "the page could not be kept", result.source, result.head
        )
    try:
        page = await IOLoop.current().run_in_executor(None, step.rewrite, raw, head)
    except ValueError as error:
        log.error("cannot rewrite %s from %s: %s", download.key, result.source, error)
        return FetchResult(
            Outcome.FAILED, f"malformed page: {error}", result.source, result.head
        )
    if not download.replace_body(page):
        return FetchResult(
            Outcome.FAILED, "the page could not be kept", result.source, result.head
        )
    return FetchResult(result.outcome, result.detail, result.source, download.head)


async def inspected(
    step: Inspect, download: Finishable, result: FetchResult
) -> FetchResult:
    """Judge the whole body (``Inspect``); a refusal drops the held batch
    and fails the download, so every client of it is cut off short."""
    held = download.take_batch()
    try:
        body = download.open_whole(held)
    except OSError as error:  # no descriptor left to read the file with
        log.error("cannot check %s: %s", download.key, error)
        body = None
    if body is None:
        log.error("cannot check %s: it is kept nowhere whole", download.key)
        return FetchResult(
            Outcome.FAILED, "the file could not be checked", result.source, result.head
        )
    try:
        judgement = await step.judge(body)
    finally:
        body.close()
    if judgement is None or isinstance(judgement, Digest):
        if judgement is not None:
            download.verified = judgement
        download.put_back(held)
        return result
    source = display_source(result.source or "-")
    if isinstance(judgement, str):
        log.error("%s from %s refused: %s", download.key, source, judgement)
        return FetchResult(Outcome.FAILED, judgement, result.source, result.head)
    download.mismatch = expected, actual = judgement
    log.error(
        "digest mismatch: %s from %s: expected %s (%s), got %s; not stored",
        download.key,
        source,
        expected,
        expected.origin,
        actual,
    )
    return FetchResult(
        Outcome.FAILED,
        f"digest mismatch: expected {expected}",
        result.source,
        result.head,
    )


async def run_step(
    step: Verification | Rewrite | Inspect, download: Finishable, result: FetchResult
) -> FetchResult:
    """One finishing step of ``download`` (a ``Verify`` as its running
    ``Verification``)."""
    if isinstance(step, Verification):
        return await step.finish(download, result)
    if isinstance(step, Inspect):
        return await inspected(step, download, result)
    return await rewritten(step, download, result)
