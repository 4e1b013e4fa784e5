"""Send a download that may still be growing to one client.

A ``ClientStream`` reads the partial file from its own offset (following)
until it has caught up with the download, then asks to be fed each new
chunk directly by the download's streaming callback (live). A live client
whose unsent bytes pass ``client_buffer`` is dropped back to following,
and a follower reads at most two reads ahead of its client, so a slow
client costs a bounded amount of memory and never slows the download.
Each stream keeps at most one ``flush()`` in flight.
"""

from __future__ import annotations

import os
from asyncio import Future

from tornado.iostream import StreamClosedError
from tornado.locks import Event
from tornado.web import RequestHandler

from pkgcache import direct
from pkgcache.batches import without_first
from pkgcache.download import Download, State

#: Read size from the partial file when following.
READ_SIZE = 1024 * 1024
#: Unsent bytes a follower may have before it waits to read more (at most
#: ``client_buffer``): one read in flight and one ready behind it.
FOLLOW_AHEAD = 2 * READ_SIZE


class ClientStream:
    """One client's view of one download.

    Create it in the same IOLoop step as the registry look-up that found the
    download STREAMING, so the partial file is still at its path.
    """

    def __init__(
        self,
        handler: RequestHandler,
        download: Download,
        bound: int,
        start: int = 0,
        end: int | None = None,
    ):
        """Send bytes ``start`` to ``end`` (exclusive; None: to the end)."""
        assert download.partial_path is not None
        self.handler = handler
        self.connection = handler.request.connection
        self.download = download
        self.bound = bound
        #: Position in the file of the next byte to send.
        self.offset = start
        self.start = start
        self.end = end
        self.closed = False
        self._fd = os.open(download.partial_path, os.O_RDONLY)
        download.readers += 1
        self._buffered = 0
        self._in_flight = 0
        self._ahead = min(bound, FOLLOW_AHEAD)
        self._flushing: Future[None] | None = None
        self._wakeup = Event()

    @property
    def sent(self) -> int:
        return self.offset - self.start

    async def run(self) -> bool:
        """Send the bytes; True if they all went out and the download did
        not fail before them."""
        try:
            return await self._run()
        finally:
            self.download.live.discard(self)
            self.download.readers -= 1
            os.close(self._fd)

    def client_left(self) -> None:
        """The client closed its connection: stop sending, keep downloading."""
        self.closed = True
        self.download.live.discard(self)
        self.wake()

    async def _run(self) -> bool:
        download = self.download
        self._start_flush()  # the status and headers go out now, not with data
        while not self.closed:
            if self in download.live:
                await self._wakeup.wait()
                self._wakeup.clear()
                if download.ended:
                    download.live.discard(self)
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
                    # fast source, new bytes arrive during every wait, and
                    # a follower that waits first never catches up.
                    download.live.add(self)
                continue
            if download.ended:
                await self._drain()
                return (
                    not self.closed
                    and download.state is State.DONE
                    and self.offset == download.received
                )
            if self.offset == download.delivered:
                download.live.add(self)
                continue
            if download.storage_failed:
                return False
            await download.progress.wait()
        return False

    def feed(self, chunks: list[bytes], size: int) -> None:
        """Called by the download with each batch while we are live.

        When tornado has nothing queued for this client, the batch goes
        straight to the socket in one ``sendmsg``; what the socket does not
        take goes through tornado. Joining the batch and passing it through
        tornado's write path cost a tenth of a cold miss's CPU time.
        """
        if self.end is not None and self.offset + size >= self.end:
            chunks = [b"".join(chunks)[: self.end - self.offset]]
            size = len(chunks[0])
            self.download.live.discard(self)
            self.wake()
        self.offset += size
        sent = 0 if self._buffered else direct.send_buffers(self.connection, chunks)
        if sent < size:
            self._send(b"".join(without_first(chunks, sent)))
        if self._buffered + self._in_flight > self.bound:
            self.download.live.discard(self)
            self.wake()

    def _caught_up(self) -> bool:
        """Has this follower sent every byte received so far, with more to
        come (so the download can feed it the rest)?"""
        download = self.download
        return (
            self.offset == download.delivered
            and not download.ended
            and not self.closed
            and (self.end is None or self.offset < self.end)
        )

    def wake(self) -> None:
        self._wakeup.set()

    def _read(self, available: int) -> bytes:
        data = os.pread(self._fd, min(READ_SIZE, available), self.offset)
        if not data:
            raise OSError(f"partial file of {self.download.key} ended early")
        self.offset += len(data)
        return data

    def _send(self, data: bytes) -> None:
        self.handler.write(data)
        self._buffered += len(data)
        if self._flushing is None:
            self._start_flush()

    def _start_flush(self) -> None:
        self._in_flight, self._buffered = self._buffered, 0
        self._flushing = self.handler.flush()
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
        """Wait until another read fits in ``FOLLOW_AHEAD``. With one read
        ready while the previous one drains, a fast client catches up with
        a fast download; waiting for each read to drain, it trailed by one
        read and one round trip for the whole file."""
        while (
            self._flushing is not None
            and self._buffered + self._in_flight + READ_SIZE > self._ahead
            and not self.closed
        ):
            await self._wakeup.wait()
            self._wakeup.clear()

    async def _drain(self) -> None:
        """Wait until everything handed to the handler reached the kernel."""
        while self._flushing is not None and not self.closed:
            await self._wakeup.wait()
            self._wakeup.clear()
