"""One upstream download of one path, shared by every client that asks.

A ``Download`` is a state machine: CONNECTING (sources tried in order) ->
STREAMING (a 200 is accepted; bytes are stored and handed on) ->
FINISHING (every byte arrived; the plan's finishing steps run:
``finishing.py``) -> PUBLISHED, CONFIRMED (a 304), SERVED (complete but
not stored) or FAILED. Its bytes are kept by a ``storage.DownloadBody``;
``inflight.py`` keeps one download per path; ``store/keeping.py`` carries
out on disk what its end means.

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

import tornado.util
from tornado.ioloop import IOLoop
from tornado.locks import Condition, Event

from pkgcache.clock import Clock
from pkgcache.digests.check import Hasher
from pkgcache.digests.values import Digest
from pkgcache.fetching.finishing import Verification, Verify, run_step
from pkgcache.fetching.plan import FetchPlan, Reader, ReaderState
from pkgcache.fetching.storage import DownloadBody, Storage
from pkgcache.fetching.upstream import (
    FetchResult,
    Outcome,
    ResponseHead,
    Upstream,
)
from pkgcache.settings import LiveSettings
from pkgcache.store.cache import CacheStore
from pkgcache.store.keeping import Keeping
from pkgcache.store.meta import Validators
from pkgcache.store.partial import PartialReader
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.download")


class State(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    FINISHING = "finishing"
    #: Complete, and at its final path in the cache.
    PUBLISHED = "published"
    #: A revalidation answered 304: the stored copy is current.
    CONFIRMED = "confirmed"
    #: Complete and served to its clients, but not stored.
    SERVED = "served"
    FAILED = "failed"


ENDED = frozenset((State.PUBLISHED, State.CONFIRMED, State.SERVED, State.FAILED))
COMPLETE = frozenset((State.PUBLISHED, State.SERVED))


class Download:
    """One upstream fetch of one path, its stored bytes and its readers."""

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
        self.clock = clock or Clock()
        self.plan = plan or FetchPlan()
        self.state = State.CONNECTING
        storage = Storage.first(stored, self.plan.keep)
        self.body = DownloadBody(
            key, store, storage, lambda: live.current.client_buffer
        )
        #: ``Finishable``: the body as a file, for an ``Inspect`` step.
        self.open_whole = self.body.open_whole
        self.head: ResponseHead | None = None
        self.result: FetchResult | None = None
        #: Bytes received from upstream.
        self.received = 0
        #: Bytes stored and handed to live readers; behind ``received`` by
        #: the chunks of this IOLoop turn. A follower at this offset can
        #: go live: the next batch handed on starts there.
        self.delivered = 0
        #: The digest the complete file matched; None: none was known.
        self.verified: Digest | None = None
        #: (expected, actual) when the bytes did not match: not stored.
        self.mismatch: tuple[Digest, Digest] | None = None
        self.started = self.clock.monotonic()
        #: Notified after every batch and at the end: followers wait on it.
        self.progress = Condition()
        self._steps = [
            Verification(step, self.plan.repository, hasher)
            if isinstance(step, Verify)
            else step
            for step in self.plan.finishing
        ]
        self._checks = [s for s in self._steps if isinstance(s, Verification)]
        self._keeping = keeping
        self._fits = fits
        self._readers: set[Reader] = set()
        self._head_known = Event()
        self._ended = Event()
        self._upstream = upstream
        self._on_begin = on_begin
        self._on_end = on_end
        #: Chunks received in this IOLoop turn, not yet stored or sent.
        self._batch: list[bytes] = []
        self._loop = IOLoop.current()

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def complete(self) -> bool:
        """Every byte arrived and passed the finishing steps."""
        return self.state in COMPLETE

    @property
    def published(self) -> bool:
        return self.state is State.PUBLISHED

    @property
    def not_modified(self) -> bool:
        return self.state is State.CONFIRMED

    @property
    def storage_failed(self) -> bool:
        """The partial file stopped taking bytes: followers cannot read
        past ``written``."""
        return self.body.storage is Storage.FILE_FAILED

    @property
    def written(self) -> int:
        """Bytes in the partial file, where followers may read."""
        return self.body.written

    @property
    def reader_count(self) -> int:
        return len(self._readers)

    @property
    def has_partial(self) -> bool:
        """True when readers can follow the download in its partial file."""
        return self.body.partial is not None

    def attach(self, reader: Reader) -> PartialReader | None:
        """Add a reader; returns its own descriptor on the partial file, or
        None when there is none (only LIVE reading then). Only before the
        end (the caller checked ``ended`` after ``wait_for_head``, in the
        same IOLoop step)."""
        assert self.state in (State.STREAMING, State.FINISHING)
        partial = self.body.partial
        descriptor = partial.open_reader() if partial is not None else None
        self._readers.add(reader)
        return descriptor

    def detach(self, reader: Reader) -> None:
        self._readers.discard(reader)

    def kept_body(self) -> bytes | None:
        """The whole body of a complete download that could not be stored
        but was small enough to keep in memory; None otherwise."""
        memory = self.body.memory
        return memory.whole() if self.complete and memory is not None else None

    def do_not_keep(self, reason: str) -> None:
        """Serve this download to its clients but never publish it."""
        if self.body.not_kept(nothing_sent_yet=not self.delivered):
            log.warning("%s: %s; served, not stored", self.key, reason)

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
            result = await self._fetch()
            if result.outcome is Outcome.COMPLETE and not self._short():
                self.state = State.FINISHING
                result = await self._finish(result)
        except Exception as error:
            log.exception("download of %s crashed", self.key)
            result = FetchResult(Outcome.FAILED, f"internal error: {error}")
        self._end(result)

    async def _fetch(self) -> FetchResult:
        """The sources in order (a revalidation asks where its copy came
        from first, with its validators), resumed where a body broke."""
        plan = self.plan
        conditional = plan.revalidating
        route = plan.route
        if conditional is not None and route is not None:
            route = route.starting_with(conditional.source)
        headers = dict(plan.request_headers)
        if conditional is not None and plan.revalidate_by_head:
            checked = await self._upstream.same_by_head(
                self.key, conditional.content_digest, route, headers
            )
            if checked is not None:
                return checked
        elif conditional is not None:
            headers.update(conditional.conditional_headers())
        return await self._upstream.fetch_resuming(
            self.key,
            self._begin,
            self._write,
            lambda: (self.head, self.received),
            route,
            headers or None,
            plan.route,
        )

    async def _finish(self, result: FetchResult) -> FetchResult:
        """The plan's finishing steps, in order, while the fetch stands."""
        for step in self._steps:
            if result.outcome is not Outcome.COMPLETE:
                break
            result = await run_step(step, self, result)
        return result

    def take_batch(self) -> list[bytes]:
        chunks, self._batch = self._batch, []  # ``Finishable``, as the next 4
        return chunks

    def put_back(self, chunks: list[bytes]) -> None:
        self._batch = chunks

    def whole_body(self) -> bytes | None:
        return self.body.whole()

    def replace_body(self, body: bytes) -> bool:
        """A rewritten page in place of the bytes received."""
        assert self.head is not None
        headers = self.head.headers.copy()
        headers["Content-Length"] = str(len(body))
        self.head = ResponseHead(self.head.status, headers, self.head.url)
        self.received = self.delivered = len(body)
        self.body.replace(body)
        return True

    def _begin(self, head: ResponseHead) -> bool:
        """Accept a 200: open the partial file and let clients see the head.
        (The upstream refused it already if it is larger than
        ``max_file_size``.)"""
        self.body.open()
        for check in self._checks:
            check.begin(self.key, head)
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
            chunks = self.take_batch()
            for check in self._checks:
                check.feed(chunks)  # one hand-over a batch, not a chunk
            self.hand_on(chunks)

    def _short(self) -> bool:
        """Fewer bytes came than the head announced."""
        assert self.head is not None
        return self.head.content_length not in (None, self.received)

    def _completes_file(self) -> bool:
        size = self.head.content_length if self.head is not None else None
        return size is not None and self.received >= size

    def hand_on(self, chunks: list[bytes], store: bool = True) -> None:
        size = sum(map(len, chunks))
        self.delivered += size
        if store:
            self.body.add(chunks, size)
        for reader in tuple(self._readers):
            if reader.state is ReaderState.LIVE:
                reader.feed(chunks, size)
        self.progress.notify_all()

    def _end(self, result: FetchResult) -> None:
        """Publish or discard, leave the registry, wake everyone: one step.
        The last batch is stored before and handed to readers after."""
        last = self.take_batch()
        if last:
            self.body.add(last, sum(map(len, last)))
        self.body.close()
        expected = self.head.content_length if self.head else None
        if result.outcome is Outcome.COMPLETE and expected not in (None, self.received):
            result = FetchResult(
                Outcome.BROKEN,
                f"got {self.received} of {expected} bytes",
                result.source,
                result.head,
            )
        self.result = result
        self.state = self._end_state(result)
        if self.state is State.FAILED and self.head is not None:
            log.error("download of %s failed: %s", self.key, result.detail)
        self._on_end(self)
        if last:
            self.hand_on(last, store=False)
        self._head_known.set()
        self._ended.set()
        self.progress.notify_all()
        for reader in tuple(self._readers):
            reader.wake()

    def _end_state(self, result: FetchResult) -> State:
        """Carry out what the end means on disk (``Keeping``) and say
        which end it is."""
        keeping = self._keeping
        outcome = result.outcome
        if outcome is Outcome.NOT_MODIFIED:
            if keeping is not None:
                keeping.confirm(self.key)
            return State.CONFIRMED
        if outcome is Outcome.NOT_FOUND and self.plan.revalidating and keeping:
            keeping.gone(self.key)
        complete = outcome is Outcome.COMPLETE
        if self._publish_or_discard(complete):
            return State.PUBLISHED
        return State.SERVED if complete else State.FAILED

    def _publish_or_discard(self, complete: bool) -> bool:
        partial = self.body.partial
        if partial is None:
            return False
        if self._fits is not None and not self._fits(self.received):
            self.do_not_keep("larger than max_size")
        keeping = self._keeping
        if complete and self.body.publishable and keeping is not None:
            mtime = self.head.last_modified if self.head else None
            record = self._record()
            published = keeping.publish(partial, self.key, mtime, record)
            folder = self.plan.digest_folder
            if published and folder and self.verified is not None:
                digest = self.verified
                also = CacheKey((*folder, digest.algorithm, digest.value.hex()))
                keeping.link(self.key, also, record)
            return published
        partial.discard()
        return False

    def _record(self) -> Validators | None:
        """A volatile file's validators, a verified file's digest."""
        wanted = self.plan.record_validators or self.verified is not None
        if not wanted or self.head is None:
            return None
        source = self.result.source if self.result is not None else None
        verified = str(self.verified) if self.verified else None
        return self.head.record(source, self.clock.now(), verified)


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
