"""Send a download that may still be growing to one client.

A ``ClientStream`` is one reader of a ``Download``. It starts FOLLOWING:
it reads the partial file from its own offset, at most two reads ahead of
its client. Once it has sent every byte the download has handed on, it
turns LIVE and the download feeds it each new batch directly, with no disk
read. A live reader whose unsent bytes pass ``client_buffer`` turns back
to FOLLOWING, so a slow client costs a bounded amount of memory and never
slows the download. When it stops, for whatever reason, it is DONE.

Wake-ups: the download notifies ``progress`` after every batch and at its
end; a follower checks "bytes to read? ended? failed?" and only then waits,
and on the one IOLoop thread nothing can run between the check and the
wait, so no wake-up is lost. A stream's own ``Event`` is set when one of
its flushes completes or the download stops feeding it; the waiter runs
on the next IOLoop iteration. Each stream keeps at most one flush in
flight. A client that leaves ends whichever of the two waits the stream
is in.
"""

from __future__ import annotations

from asyncio import Future, ensure_future

from tornado.iostream import StreamClosedError
from tornado.locks import Event

from pkgcache.batches import without_first
from pkgcache.fetching.download import Download
from pkgcache.fetching.plan import ReaderState
from pkgcache.serving.output import ClientOutput

#: Read size from the partial file when following.
READ_SIZE = 1024 * 1024
#: Unsent bytes a follower may have before it waits to read more (at most
#: ``client_buffer``): one read in flight and one ready behind it, so a
#: fast client catches up with a fast download instead of trailing it by
#: one read and one round trip.
FOLLOW_AHEAD = 2 * READ_SIZE


class ClientStream:
    """One client's view of one download, bytes ``start`` to ``end``
    (exclusive; None: to the end).

    Create it in the same IOLoop step that saw the download STREAMING
    (``Download.attach`` opens its descriptor on the partial file).
    """

    def __init__(
        self,
        output: ClientOutput,
        download: Download,
        bound: int,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        self.output = output
        self.download = download
        self.bound = bound
        #: Position in the file of the next byte to send.
        self.offset = start
        self.end = end
        self.state = ReaderState.FOLLOWING
        self._file = download.attach(self)
        self._buffered = 0
        self._in_flight = 0
        self._ahead = min(bound, FOLLOW_AHEAD)
        self._flushing: Future[None] | None = None
        self._wakeup = Event()
        #: The download's ``progress`` wait a follower is in, if any.
        self._waiting: Future[None] | None = None
        #: Set when a reader without a partial file to fall back on passed
        #: its bound: it cannot catch up, so it is cut.
        self._overflowed = False

    @property
    def closed(self) -> bool:
        return self.output.closed

    async def run(self) -> bool:
        """Send the bytes; True if they all went out and the download did
        not fail before them."""
        try:
            return await self._run()
        finally:
            self.state = ReaderState.DONE
            self.download.detach(self)
            if self._file is not None:
                self._file.close()

    def client_left(self) -> None:
        """The client closed its connection: stop sending, keep downloading.
        Whatever the stream waits on ends now (its own event, or the
        download's next batch), so its descriptor on the partial file is
        closed at once, not at the next batch."""
        self.output.closed = True
        self.state = ReaderState.DONE
        self.wake()
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def feed(self, chunks: list[bytes], size: int) -> None:
        """A batch from the download, while LIVE.

        When tornado has nothing queued for this client, the batch goes
        straight to the socket in one ``sendmsg``; what the socket does not
        take goes through tornado.
        """
        if self.end is not None and self.offset + size >= self.end:
            chunks = [b"".join(chunks)[: self.end - self.offset]]
            size = len(chunks[0])
            self._stop_live()
        self.offset += size
        sent = 0 if self._buffered else self.output.send_buffers(chunks)
        if sent < size:
            self._send(b"".join(without_first(chunks, sent)))
        if self._buffered + self._in_flight > self.bound:
            if self._file is None:
                self._overflowed = True
                self.state = ReaderState.DONE
            self._stop_live()

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> bool:
        download = self.download
        self._start_flush()  # the status and headers go out now, not with data
        while not self.closed and not self._overflowed:
            if self.state is ReaderState.LIVE:
                await self._wakeup.wait()
                self._wakeup.clear()
                if download.ended and self.state is ReaderState.LIVE:
                    self.state = ReaderState.FOLLOWING
                continue
            await self._room()
            if self.closed:
                break
            if self.end is not None and self.offset >= self.end:
                await self._drain()
                return not self.closed
            limit = (
                download.written
                if self.end is None
                else min(download.written, self.end)
            )
            if self.offset < limit:
                self._send(self._read(limit - self.offset))
                if self._caught_up():
                    # Live now, before waiting for the send to drain: on a
                    # fast source new bytes arrive during every wait, and a
                    # follower that waits first never catches up.
                    self.state = ReaderState.LIVE
                continue
            if download.ended:
                await self._drain()
                return (
                    not self.closed
                    and download.complete
                    and self.offset == download.received
                )
            if self.offset == download.delivered:
                self.state = ReaderState.LIVE
                continue
            if download.storage_failed or self._file is None:
                return False  # bytes it needs are in no file
            await self._progress()
        return False

    async def _progress(self) -> None:
        """Wait for the download's next batch or its end, or for this
        client to leave: both resolve the one future waited on."""
        waiting: Future[None] = Future()
        self._waiting = waiting

        def notified(_done: object) -> None:
            if not waiting.done():
                waiting.set_result(None)

        ensure_future(self.download.progress.wait()).add_done_callback(notified)
        try:
            await waiting
        finally:
            self._waiting = None

    def _stop_live(self) -> None:
        if self.state is ReaderState.LIVE:
            self.state = ReaderState.FOLLOWING
        self.wake()

    def _caught_up(self) -> bool:
        """Has this follower sent every byte handed on so far, with more to
        come (so the download can feed it the rest)?"""
        download = self.download
        return (
            self.offset == download.delivered
            and not download.ended
            and not self.closed
            and (self.end is None or self.offset < self.end)
        )

    def _read(self, available: int) -> bytes:
        assert self._file is not None
        data = self._file.read(self.offset, min(READ_SIZE, available))
        if not data:
            raise OSError(f"partial file of {self.download.key} ended early")
        self.offset += len(data)
        return data

    def _send(self, data: bytes) -> None:
        self.output.queue(data)
        self._buffered += len(data)
        if self._flushing is None:
            self._start_flush()

    def _start_flush(self) -> None:
        self._in_flight, self._buffered = self._buffered, 0
        self._flushing = self.output.flush()
        self._flushing.add_done_callback(self._flushed)

    def _flushed(self, future: Future[None]) -> None:
        self._flushing = None
        self._in_flight = 0
        try:
            future.result()
        except StreamClosedError:
            self.client_left()
            return
        if self._buffered:
            self._start_flush()
        self.wake()

    async def _room(self) -> None:
        """Wait until another read fits in ``FOLLOW_AHEAD``."""
        while (
            self._flushing is not None
            and self._buffered + self._in_flight + READ_SIZE > self._ahead
            and not self.closed
        ):
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _drain(self) -> None:
        """Wait until everything handed to tornado reached the kernel."""
        while self._flushing is not None and not self.closed:
            await self._wakeup.wait()
            self._wakeup.clear()
