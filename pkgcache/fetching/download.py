"""One upstream download of one path, shared by every client that asks.

A ``Download`` goes CONNECTING (sources tried in order) -> STREAMING (a 200
is accepted and the partial file is open) -> DONE (published) or FAILED
(partial removed). ``registry.py`` keeps at most one per path.

The body chunks of one IOLoop turn form a batch: it is written to the
partial file with one ``writev``, handed to every reader that is LIVE
(caught up with the download), and then the followers are woken. The
download never waits for a reader and never stops because one left.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol

from tornado.ioloop import IOLoop
from tornado.locks import Condition, Event

from pkgcache.fetching.upstream import FetchResult, Outcome, ResponseHead, Upstream
from pkgcache.settings import LiveSettings
from pkgcache.store.cache import CacheStore, StoreError
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


class Download:
    """One upstream fetch of one path, its partial file and its readers."""

    def __init__(
        self,
        key: CacheKey,
        store: CacheStore,
        upstream: Upstream,
        live_settings: LiveSettings,
        on_begin: Callable[[Download], None],
        on_end: Callable[[Download], None],
    ) -> None:
        self.key = key
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
        self.started = time.monotonic()
        #: Notified after every batch and at the end: followers wait on it.
        self.progress = Condition()
        self._readers: set[Reader] = set()
        self._head_known = Event()
        self._store = store
        self._upstream = upstream
        self._settings = live_settings
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

    def attach(self, reader: Reader) -> PartialReader:
        """Add a reader; returns its own descriptor on the partial file.
        Only while STREAMING (the caller checked ``ended`` after
        ``wait_for_head``, in the same IOLoop step)."""
        assert self.state is State.STREAMING and self._partial is not None
        descriptor = self._partial.open_reader()
        self._readers.add(reader)
        return descriptor

    def detach(self, reader: Reader) -> None:
        self._readers.discard(reader)

    def start(self) -> None:
        IOLoop.current().add_callback(self._run)

    async def wait_for_head(self) -> None:
        """Return once the response head is known or the download ended."""
        await self._head_known.wait()

    async def _run(self) -> None:
        try:
            result = await self._upstream.fetch(
                self.key, "GET", self._begin, self._write
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
                )
                if resumed.outcome is Outcome.FAILED:
                    break
                result = resumed
        except Exception as error:
            log.exception("download of %s crashed", self.key)
            result = FetchResult(Outcome.FAILED, f"internal error: {error}")
        self._end(result)

    def _begin(self, head: ResponseHead) -> bool:
        """Accept a 200: open the partial file and let clients see the head."""
        limit = self._settings.current.max_file_size
        if limit and (head.content_length or 0) > limit:
            log.warning("%s is larger than max_file_size; refused", self.key)
            return False
        try:
            self._partial = self._store.new_partial()
        except OSError as error:
            log.error("cannot create a partial file for %s: %s", self.key, error)
            return False
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
            self._hand_on(self._take_batch())

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
            return
        try:
            self._partial.write(chunks, size)
        except OSError as error:
            self.storage_failed = True
            log.error(
                "cannot write %s to the cache (%s): clients still fed directly "
                "get the file, it will not be cached",
                self.key,
                error.strerror,
            )

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
        self.state = State.DONE if result.outcome is Outcome.COMPLETE else State.FAILED
        if self._partial is not None:
            self._publish_or_discard(self._partial)
        if self.state is State.FAILED and self.head is not None:
            log.error("download of %s failed: %s", self.key, result.detail)
        self._on_end(self)
        if last:
            self._hand_on(last, store=False)
        self._head_known.set()
        self.progress.notify_all()
        for reader in tuple(self._readers):
            reader.wake()

    def _publish_or_discard(self, partial: PartialFile) -> None:
        if self.state is State.DONE and not self.storage_failed:
            try:
                mtime = self.head.last_modified if self.head else None
                partial.publish(self.key, mtime)
                self.published = True
                return
            except StoreError as error:
                log.error("cannot store %s: %s", self.key, error)
        partial.discard()
