"""One upstream download of one path, shared by every client that asks.

A ``Download`` goes CONNECTING (sources tried in order) -> STREAMING (a 200
is accepted and the partial file is open) -> DONE (published) or FAILED
(partial removed). ``inflight.py`` keeps at most one per path.

The body chunks of one IOLoop turn form a batch: it is written to the
partial file with one ``writev``, handed to every reader that is LIVE
(caught up with the download), and then the followers are woken. The
download never waits for a reader and never stops because one left.
"""

from __future__ import annotations

import datetime
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import tornado.util
from tornado.ioloop import IOLoop
from tornado.locks import Condition, Event

from pkgcache.batches import without_first
from pkgcache.clock import Clock
from pkgcache.digests.check import DigestCheck, Hasher
from pkgcache.digests.learnt import from_headers, from_path
from pkgcache.digests.values import Digest
from pkgcache.fetching.upstream import (
    FetchResult,
    Outcome,
    ResponseHead,
    Route,
    Upstream,
)
from pkgcache.settings import LiveSettings, display_source
from pkgcache.store.cache import CacheStore
from pkgcache.store.keeping import Keeping
from pkgcache.store.meta import Validators
from pkgcache.store.partial import PartialFile, PartialReader
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.download")

#: Times a broken download is continued with Range requests before its
#: clients get an unclean close.
MAX_RESUMES = 3


class State(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


class ReaderState(enum.Enum):
    """Where a reader gets its bytes: from the partial file at its own pace
    (FOLLOWING), from each batch as it arrives (LIVE), or no longer (DONE)."""

    FOLLOWING = "following"
    LIVE = "live"
    DONE = "done"


class Reader(Protocol):
    """One client's view of a download (``serving/clientstream.py``)."""

    state: ReaderState

    def feed(self, chunks: list[bytes], size: int) -> None:
        """A batch, while the reader is LIVE."""

    def wake(self) -> None:
        """The download ended, or stopped feeding this reader."""


@dataclass(frozen=True)
class FetchPlan:
    """How a download fetches and what it keeps: the route (sources and
    path), the stored copy's validators when it revalidates one (a
    conditional request; 304 = NOT_MODIFIED), whether the new file's
    validators are recorded (volatile files), and whether it is kept at
    all (``pass`` files are streamed, never stored)."""

    route: Route | None = None
    revalidating: Validators | None = None
    record_validators: bool = False
    keep: bool = True
    #: The repository it is for, for the metrics.
    repository: str = "-"
    #: Seconds a 4xx from every source is remembered (``Downloads``).
    negative_for: float = 0.0
    #: Request headers every source is sent (a registry's Accept).
    request_headers: tuple[tuple[str, str], ...] = ()
    #: A registry page: the whole body is rewritten by this (off the
    #: IOLoop) before it is stored or served; clients then wait for the
    #: end instead of following the bytes (``wait_for_end``).
    rewrite: Callable[[bytes, ResponseHead], bytes] | None = None
    #: What the file must hash to, as its repository's index says; its
    #: path and the upstream's headers may add more (``digests/``).
    expected: tuple[Digest, ...] = ()


class Download:
    """One upstream fetch of one path, its partial file and its readers."""

    def __init__(
        self,
        key: CacheKey,
        store: CacheStore,
        upstream: Upstream,
        live: LiveSettings,
        on_begin: Callable[[Download], None],
        on_end: Callable[[Download], None],
        stored: bool = True,
        fits: Callable[[int], bool] | None = None,
        plan: FetchPlan | None = None,
        keeping: Keeping | None = None,
        clock: Clock | None = None,
        *,
        hasher: Hasher,
    ) -> None:
        """``stored`` False: a pass-through for one client, with no partial
        file (the cache cannot take it). ``fits(size)`` False: a complete
        file of that size must not be stored (see ``do_not_keep``).
        ``keeping`` publishes, confirms and removes what it stores;
        ``hasher`` checks the bytes against their digests."""
        self.key = key
        self._hasher = hasher
        self.clock = clock or Clock()
        self.plan = plan or FetchPlan()
        self._keeping = keeping
        #: True when a revalidation was answered 304: the stored copy stays.
        self.not_modified = False
        self.state = State.CONNECTING
        self.head: ResponseHead | None = None
        self.result: FetchResult | None = None
        #: Bytes received from upstream.
        self.received = 0
        #: Bytes stored and handed to live readers; behind ``received`` by
        #: the chunks of this IOLoop turn. A follower at this offset can
        #: go live: the next batch handed on starts there.
        self.delivered = 0
        #: True once a write to the partial file failed: the file is then
        #: never published and followers cannot read past ``written``.
        self.storage_failed = False
        #: True once the complete file is at its final path.
        self.published = False
        #: The digest the complete file matched; None: none was known.
        self.verified: Digest | None = None
        #: (expected, actual) when the bytes did not match: not stored.
        self.mismatch: tuple[Digest, Digest] | None = None
        self._check: DigestCheck | None = None
        #: False when the file must not be published even if it completes
        #: (``do_not_keep``), or has no partial file at all.
        self.keep = stored and self.plan.keep
        self._stored = stored
        self._fits = fits
        #: The body, kept in memory once it cannot be stored (no partial
        #: file, or a write failed), while it fits ``client_buffer``, so a
        #: client that comes after the end still gets it; None otherwise.
        self._memory: list[bytes] | None = None
        self._memory_size = 0
        self.started = self.clock.monotonic()
        #: Notified after every batch and at the end: followers wait on it.
        self.progress = Condition()
        self._readers: set[Reader] = set()
        self._head_known = Event()
        self._ended = Event()
        self._store = store
        self._upstream = upstream
        self._settings = live
        self._on_begin = on_begin
        self._on_end = on_end
        self._partial: PartialFile | None = None
        #: Chunks received in this IOLoop turn, not yet stored or sent.
        self._batch: list[bytes] = []
        self._loop = IOLoop.current()

    @property
    def ended(self) -> bool:
        return self.state in (State.DONE, State.FAILED)

    @property
    def written(self) -> int:
        """Bytes in the partial file, where followers may read."""
        return self._partial.written if self._partial is not None else 0

    @property
    def reader_count(self) -> int:
        return len(self._readers)

    @property
    def has_partial(self) -> bool:
        """True when readers can follow the download in its partial file."""
        return self._partial is not None

    def attach(self, reader: Reader) -> PartialReader | None:
        """Add a reader; returns its own descriptor on the partial file, or
        None when there is none (only LIVE reading then). Only while
        STREAMING (the caller checked ``ended`` after ``wait_for_head``, in
        the same IOLoop step)."""
        assert self.state is State.STREAMING
        descriptor = self._partial.open_reader() if self._partial else None
        self._readers.add(reader)
        return descriptor

    def kept_body(self) -> bytes | None:
        """The whole body of a DONE download that could not be stored but
        was small enough to keep in memory; None otherwise."""
        if self.state is not State.DONE or self._memory is None:
            return None
        return b"".join(self._memory)

    def do_not_keep(self, reason: str) -> None:
        """Serve this download to its clients but never publish it."""
        if self.keep:
            self.keep = False
            if self._memory is None and not self.delivered:
                self._memory = []
            log.warning("%s: %s; served, not stored", self.key, reason)

    def detach(self, reader: Reader) -> None:
        self._readers.discard(reader)

    def start(self) -> None:
        IOLoop.current().add_callback(self._run)

    async def wait_for_head(self, timeout: float | None = None) -> bool:
        """Return once the response head is known or the download ended:
        True, or False when ``timeout`` seconds passed first."""
        return await _wait(self._head_known, timeout)

    async def wait_for_end(self, timeout: float | None = None) -> bool:
        """Return once the download ended: True, or False when ``timeout``
        seconds passed first."""
        return await _wait(self._ended, timeout)

    async def _run(self) -> None:
        try:
            plan = self.plan
            conditional = plan.revalidating
            route = plan.route
            if conditional is not None and route is not None:
                route = route.starting_with(conditional.source)
            headers = dict(plan.request_headers)
            if conditional is not None:
                headers.update(conditional.conditional_headers())
            result = await self._upstream.fetch(
                self.key, "GET", self._begin, self._write, route, headers or None
            )
            resumes = 0
            while result.outcome is Outcome.BROKEN and resumes < MAX_RESUMES:
                resumes += 1
                assert self.head is not None
                log.warning(
                    "download of %s broke at byte %d (%s): resuming",
                    self.key,
                    self.received,
                    result.detail,
                )
                resumed = await self._upstream.resume(
                    self.key,
                    self.head,
                    self.received,
                    result.source,
                    self._write,
                    same_source_first=resumes == 1,
                    route=self.plan.route,
                )
                if resumed.outcome is Outcome.FAILED:
                    break
                result = resumed
            if self._check is not None and result.outcome is Outcome.COMPLETE:
                result = await self._verified(result, self._check)
            if plan.rewrite is not None and result.outcome is Outcome.COMPLETE:
                result = await self._rewritten(result, plan.rewrite)
        except Exception as error:
            log.exception("download of %s crashed", self.key)
            result = FetchResult(Outcome.FAILED, f"internal error: {error}")
        self._end(result)

    async def _verified(self, result: FetchResult, check: DigestCheck) -> FetchResult:
        """Every byte arrived: hold the last batch until the digests say
        whether they are the file. A mismatch with any expected digest
        drops that batch (no client and no follower ever has the whole
        body) and fails the download."""
        if self._short():
            return result  # ``_end`` calls it broken
        held = self._take_batch()  # out of ``_pass_on``'s reach meanwhile
        check.feed(held)
        verdict = await check.verdict()
        if verdict.mismatch is None:
            self.verified = verdict.matched
            self._batch = held
            return result
        self.mismatch = expected, actual = verdict.mismatch
        log.error(
            "digest mismatch: %s of repository %s from %s: expected %s (%s), got %s;"
            " not stored",
            self.key,
            self.plan.repository,
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

    async def _rewritten(
        self, result: FetchResult, rewrite: Callable[[bytes, ResponseHead], bytes]
    ) -> FetchResult:
        """A registry page arrived whole: rewrite it (in a thread: a big
        page takes a while to parse) and put the new body in place of the
        old, so that what is stored and served is the rewritten page."""
        if self._short():
            return result  # ``_end`` calls it broken
        last = self._take_batch()
        if last:
            self._hand_on(last)
        raw = self._whole_body()
        if raw is None:
            return FetchResult(
                Outcome.FAILED, "the page could not be kept", result.source, result.head
            )
        try:
            page = await self._loop.run_in_executor(None, rewrite, raw, self.head)
        except ValueError as error:
            log.error("cannot rewrite %s from %s: %s", self.key, result.source, error)
            return FetchResult(
                Outcome.FAILED, f"malformed page: {error}", result.source, result.head
            )
        headers = self.head.headers.copy()
        headers["Content-Length"] = str(len(page))
        self.head = ResponseHead(self.head.status, headers, self.head.url)
        self.received = self.delivered = len(page)
        if self._memory is not None:
            self._memory, self._memory_size = [page], len(page)
        if self._partial is not None and not self.storage_failed:
            self._partial.discard()
            self._partial = None
            try:
                self._partial = self._store.new_partial()
                self._partial.write([page], len(page))
            except OSError as error:
                self._store.storage_failed(f"write {self.key} to the cache", error)
                self.storage_failed = True
                self._memory, self._memory_size = [page], len(page)
        return FetchResult(result.outcome, result.detail, result.source, self.head)

    def _whole_body(self) -> bytes | None:
        """Everything received, from the partial file or from memory."""
        if self._partial is not None and not self.storage_failed:
            reader = self._partial.open_reader()
            try:
                return reader.read(0, self._partial.written)
            except OSError:
                return None
            finally:
                reader.close()
        if self._memory is not None:
            return b"".join(self._memory)
        return None

    def _begin(self, head: ResponseHead) -> bool:
        """Accept a 200: open the partial file and let clients see the head.
        (The upstream refused it already if it is larger than
        ``max_file_size``.)"""
        if self._stored:
            try:
                self._partial = self._store.new_partial()
            except OSError as error:
                self._store.storage_failed(f"create a file for {self.key}", error)
                self.storage_failed = True
                self.keep = False
        if self._partial is None or not self.keep:
            self._memory = []
        expected = (
            *self.plan.expected,
            *from_path(self.key),
            *from_headers(head.headers),
        )
        if expected:
            self._check = self._hasher.check(expected)
        self.head = head
        self.state = State.STREAMING
        self._head_known.set()
        self._on_begin(self)
        return True

    def _write(self, chunk: bytes) -> None:
        """The streaming callback: count the chunk now, store and send it
        with the others of its batch (``_pass_on``)."""
        self.received += len(chunk)
        self._batch.append(chunk)
        if len(self._batch) == 1:
            self._loop.add_callback(self._pass_on)

    def _pass_on(self) -> None:
        """Store the batch, hand it to live readers, wake followers.

        The batch that completes a file of known length waits for ``_end``,
        so a client that has every byte finds the file published.
        """
        if self._batch and not self._completes_file():
            chunks = self._take_batch()
            if self._check is not None:
                self._check.feed(chunks)  # one hand-over a batch, not a chunk
            self._hand_on(chunks)

    def _short(self) -> bool:
        """Fewer bytes came than the head announced."""
        assert self.head is not None
        return self.head.content_length not in (None, self.received)

    def _completes_file(self) -> bool:
        size = self.head.content_length if self.head is not None else None
        return size is not None and self.received >= size

    def _take_batch(self) -> list[bytes]:
        chunks, self._batch = self._batch, []
        return chunks

    def _hand_on(self, chunks: list[bytes], store: bool = True) -> None:
        size = sum(map(len, chunks))
        self.delivered += size
        if store:
            self._store_batch(chunks, size)
        for reader in tuple(self._readers):
            if reader.state is ReaderState.LIVE:
                reader.feed(chunks, size)
        self.progress.notify_all()

    def _store_batch(self, chunks: list[bytes], size: int) -> None:
        if self.storage_failed or self._partial is None:
            self._keep_in_memory(chunks, size)
            return
        if not self.keep:  # never published: a late client gets memory
            self._keep_in_memory(chunks, size)
        before = self._partial.written
        try:
            self._partial.write(chunks, size)
        except OSError as error:
            self.storage_failed = True
            self._store.storage_failed(f"write {self.key} to the cache", error)
            self._keep_from_partial(chunks, self._partial.written - before)

    def _keep_from_partial(self, chunks: list[bytes], stored: int) -> None:
        """A write failed: keep what the file holds and the rest of the
        batch in memory instead, if the whole fits."""
        assert self._partial is not None
        written = self._partial.written
        if written > self._settings.current.client_buffer:
            return
        reader = self._partial.open_reader()
        try:
            start = reader.read(0, written) if written else b""
        except OSError:
            return
        finally:
            reader.close()
        if len(start) == written:
            self._memory = [start] if start else []
            self._memory_size = written
            rest = without_first(chunks, stored)
            self._keep_in_memory(rest, sum(map(len, rest)))

    def _keep_in_memory(self, chunks: list[bytes], size: int) -> None:
        if self._memory is None:
            return
        self._memory_size += size
        if self._memory_size > self._settings.current.client_buffer:
            self._memory = None
        else:
            self._memory.extend(bytes(chunk) for chunk in chunks)

    def _end(self, result: FetchResult) -> None:
        """Publish or discard, leave the registry, wake everyone: one step.
        The last batch is stored before and handed to readers after."""
        last = self._take_batch()
        if last:
            self._store_batch(last, sum(map(len, last)))
        if self._partial is not None:
            self._partial.close()
        expected = self.head.content_length if self.head else None
        if result.outcome is Outcome.COMPLETE and expected not in (None, self.received):
            result = FetchResult(
                Outcome.BROKEN,
                f"got {self.received} of {expected} bytes",
                result.source,
                result.head,
            )
        self.result = result
        self.not_modified = result.outcome is Outcome.NOT_MODIFIED
        done = result.outcome in (Outcome.COMPLETE, Outcome.NOT_MODIFIED)
        self.state = State.DONE if done else State.FAILED
        gone = result.outcome is Outcome.NOT_FOUND and self.plan.revalidating
        if self._keeping is not None and self.not_modified:
            self._keeping.confirm(self.key)
        elif self._keeping is not None and gone:
            self._keeping.gone(self.key)
        if self._partial is not None:
            self._publish_or_discard(self._partial)
        if self.state is State.FAILED and self.head is not None:
            log.error("download of %s failed: %s", self.key, result.detail)
        self._on_end(self)
        if last:
            self._hand_on(last, store=False)
        self._head_known.set()
        self._ended.set()
        self.progress.notify_all()
        for reader in tuple(self._readers):
            reader.wake()

    def _publish_or_discard(self, partial: PartialFile) -> None:
        if self._fits is not None and not self._fits(self.received):
            self.do_not_keep("larger than max_size")
        storable = self.keep and not self.storage_failed
        if self.state is State.DONE and storable and self._keeping is not None:
            mtime = self.head.last_modified if self.head else None
            self.published = self._keeping.publish(
                partial, self.key, mtime, self._record()
            )
            return
        partial.discard()

    def _record(self) -> Validators | None:
        """What is recorded beside the published file: a volatile file's
        validators (what to revalidate it with, and when), a verified
        file's digest; None when neither."""
        wanted = self.plan.record_validators or self.verified is not None
        if not wanted or self.head is None:
            return None
        headers = self.head.headers
        return Validators(
            headers.get("ETag"),
            headers.get("Last-Modified"),
            self.result.source if self.result is not None else None,
            self.clock.now(),
            headers.get("Content-Type"),
            str(self.verified) if self.verified else None,
        )


async def _wait(event: Event, timeout: float | None) -> bool:
    """Wait for ``event``: True once set, False when ``timeout`` seconds
    passed first."""
    if timeout is None:
        await event.wait()
        return True
    try:
        await event.wait(timeout=datetime.timedelta(seconds=timeout))
    except tornado.util.TimeoutError:
        return False
    return True
