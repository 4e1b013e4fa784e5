"""One upstream download of one path, shared by every client that asks.

A ``Download`` goes CONNECTING (sources tried in order) -> STREAMING (a 200
is accepted and the partial file is open) -> DONE (published) or FAILED
(partial removed). ``Downloads`` is the registry: at most one Download per
path. Everything runs on the IOLoop thread, so "look up, then join or
start" needs no lock.

The body chunks of one IOLoop turn are written to the partial file
together and handed to the clients that are caught up ("live" client
streams, see ``follow.py``), then followers are woken. The download never
waits for a client and never stops because one left.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from tornado.ioloop import IOLoop
from tornado.locks import Condition, Event

from pkgcache.batches import IOV_MAX, without_first
from pkgcache.paths import CacheKey
from pkgcache.store import CacheStore, StoreError
from pkgcache.upstream import FetchResult, Outcome, ResponseHead, Upstream

log = logging.getLogger("pkgcache.download")


#: Times a broken download is continued with Range requests before its
#: clients get an unclean close.
MAX_RESUMES = 3


class State(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


class LiveReader(Protocol):
    """A client stream that the download feeds directly (see follow.py)."""

    def feed(self, chunks: list[bytes], size: int) -> None: ...

    def wake(self) -> None: ...


class Download:
    """One upstream fetch of one path, its partial file and its readers."""

    def __init__(
        self,
        key: CacheKey,
        store: CacheStore,
        upstream: Upstream,
        on_begin: Callable[[Download], None],
        on_end: Callable[[Download], None],
    ) -> None:
        self.key = key
        self.state = State.CONNECTING
        self.head: ResponseHead | None = None
        self.result: FetchResult | None = None
        self.partial_path: str | None = None
        #: Bytes received from upstream.
        self.received = 0
        #: Bytes stored and handed to live readers; behind ``received`` by
        #: the chunks of this IOLoop turn. A follower at this offset can
        #: go live: the next chunk handed on starts there.
        self.delivered = 0
        #: Bytes in the partial file, where followers may read.
        self.written = 0
        #: True once a write to the partial file failed: the file is then
        #: never published and followers cannot read past ``written``.
        self.storage_failed = False
        #: True once the complete file is at its final path.
        self.published = False
        self.live: set[LiveReader] = set()
        #: Clients sending this download (live or following), for status.
        self.readers = 0
        self.started = time.monotonic()
        self.progress = Condition()
        self._head_known = Event()
        self._store = store
        self._upstream = upstream
        self._on_begin = on_begin
        self._on_end = on_end
        self._fd: int | None = None
        #: Chunks received in this IOLoop turn, not yet stored or sent.
        self._batch: list[bytes] = []
        self._loop = IOLoop.current()

    @property
    def ended(self) -> bool:
        return self.state in (State.DONE, State.FAILED)

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
        limit = self._upstream.settings.max_file_size
        if limit and (head.content_length or 0) > limit:
            log.warning("%s is larger than max_file_size; refused", self.key)
            return False
        try:
            self.partial_path, self._fd = self._store.new_partial()
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
        """Write the chunks that arrived together, then hand them to live
        clients and wake followers, all at once.

        libcurl hands over at most 16 KiB per call, and tornado delivers
        everything one socket read brought in a row. One write and one
        send per batch instead of per 16 KiB cut the cold-miss CPU time.
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
        if store and not self.storage_failed:
            self._store_chunks(chunks, size)
        for reader in tuple(self.live):
            reader.feed(chunks, size)
        self.progress.notify_all()

    def _store_chunks(self, chunks: list[bytes], size: int) -> None:
        """One ``writev`` for the batch: joining 16 KiB chunks first cost
        as much as a tenth of a cold miss's CPU time."""
        assert self._fd is not None
        try:
            while chunks:
                done = os.writev(self._fd, chunks[:IOV_MAX])
                self.written += done
                chunks = without_first(chunks, done) if done < size else []
                size -= done
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
        The last batch is stored before and handed to clients after."""
        last = self._take_batch()
        if last and not self.storage_failed:
            self._store_chunks(last, sum(map(len, last)))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
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
        if self.partial_path is not None:
            self._publish_or_discard()
        if self.state is State.FAILED and self.head is not None:
            log.error("download of %s failed: %s", self.key, result.detail)
        self._on_end(self)
        if last:
            self._hand_on(last, store=False)
        self._head_known.set()
        self.progress.notify_all()
        for reader in tuple(self.live):
            reader.wake()

    def _publish_or_discard(self) -> None:
        assert self.partial_path is not None
        if self.state is State.DONE and not self.storage_failed:
            try:
                mtime = self.head.last_modified if self.head else None
                self._store.publish(self.partial_path, self.key, mtime)
                self.published = True
                return
            except StoreError as error:
                log.error("cannot store %s: %s", self.key, error)
        self._store.discard(self.partial_path)


class Downloads:
    """The registry of downloads in flight, one per path.

    ``on_begin`` and ``on_end`` listeners hear of every download that
    starts streaming and of every one that ends (eviction, metrics).
    """

    def __init__(self, store: CacheStore, upstream: Upstream) -> None:
        self.store = store
        self.upstream = upstream
        self.on_begin: list[Callable[[Download], None]] = []
        self.on_end: list[Callable[[Download], None]] = []
        self._active: dict[CacheKey, Download] = {}

    def active(self) -> list[Download]:
        return list(self._active.values())

    def __len__(self) -> int:
        return len(self._active)

    def get(self, key: CacheKey) -> Download | None:
        return self._active.get(key)

    def start(self, key: CacheKey) -> Download:
        """Register and start a download; the caller checked there is none."""
        assert key not in self._active
        download = Download(key, self.store, self.upstream, self._began, self._forget)
        self._active[key] = download
        download.start()
        return download

    def _began(self, download: Download) -> None:
        for listener in self.on_begin:
            listener(download)

    def _forget(self, download: Download) -> None:
        if self._active.get(download.key) is download:
            del self._active[download.key]
        for listener in self.on_end:
            listener(download)
