"""The sending side of one response: body bytes to one client, counted as
they leave.

Every body (``bodies.py``) goes out through a ``ClientOutput``: through
tornado's ``write``/``flush``, or beside it (``sendmsg`` of a batch,
``sendfile`` of a big hit) where ``tornado_internals`` allows. ``sent``
counts the bytes that reached the kernel, whichever way, so the access log
and the ``served_bytes`` metric show what a client that left half-way
really got. Once a body has started, a failure is ``cut``: the connection
closes without a clean end, so the client sees an error instead of a short
file that looks complete.
"""

from __future__ import annotations

import logging
from asyncio import Future

from tornado.httputil import HTTPConnection
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from pkgcache import tornado_internals

log = logging.getLogger("pkgcache.serving")


class ClientOutput:
    """One response's body on its way to one client."""

    def __init__(self, handler: RequestHandler, send_timeout: float) -> None:
        """``send_timeout``: a client that takes no byte for this long is
        cut off, so it cannot hold its socket and file forever."""
        self.handler = handler
        self.send_timeout = send_timeout
        connection = handler.request.connection
        assert connection is not None
        self.connection: HTTPConnection = connection
        #: Body bytes that reached the kernel.
        self.sent = 0
        #: True once the client left or the connection was cut.
        self.closed = False
        #: True when the body was cut short because of our side's failure.
        self.unclean = False
        self._queued = 0

    def queue(self, data: bytes) -> None:
        """Hand ``data`` to tornado; it goes out with the next flush."""
        self.handler.write(data)
        self._queued += len(data)

    def flush(self) -> Future[None]:
        """Send what is queued (the headers first, if not sent yet); the
        future resolves when it reached the kernel and raises
        ``StreamClosedError`` if the client left."""
        count, self._queued = self._queued, 0
        future = self.handler.flush()

        def counted(done: Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                self.sent += count

        # Already done when tornado wrote it all at once: count it now, as
        # an awaiting caller goes on without yielding to the loop.
        if future.done():
            counted(future)
        else:
            future.add_done_callback(counted)
            self._watch(future, tornado_internals.bytes_taken(self.connection))
        return future

    def _watch(self, future: Future[None], taken: int | None) -> None:
        """Cut the client off if ``future`` is still pending after
        ``send_timeout`` with no byte taken meanwhile."""

        def check() -> None:
            if future.done() or self.closed:
                return
            now = tornado_internals.bytes_taken(self.connection)
            if now is not None and taken is not None and now > taken:
                self._watch(future, now)
                return
            log.info("client took nothing for %gs: closing", self.send_timeout)
            self.close()
            # Closing the connection ourselves drops tornado's pending write
            # future unresolved: fail it, so whoever waits on it ends.
            if not future.done():
                future.set_exception(StreamClosedError())

        loop = IOLoop.current()
        timer = loop.call_later(self.send_timeout, check)
        future.add_done_callback(lambda _done: loop.remove_timeout(timer))

    def send_buffers(self, chunks: list[bytes]) -> int:
        """Send what the socket takes now beside tornado; 0 means use
        ``queue`` instead (see ``tornado_internals.send_buffers``)."""
        sent = tornado_internals.send_buffers(self.connection, chunks)
        self.sent += sent
        return sent

    def can_send_file(self) -> bool:
        """True when ``send_file`` may be used now (headers flushed)."""
        return tornado_internals.can_write_beside(self.connection)

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of the file open as ``fd``, from ``offset``, by
        ``os.sendfile``."""
        await tornado_internals.send_file(
            self.connection, fd, offset, count, self._count, self.send_timeout
        )

    def _count(self, size: int) -> None:
        self.sent += size

    def close(self) -> None:
        """The client left: close our side too, quietly."""
        self.closed = True
        tornado_internals.close(self.connection)

    def cut(self) -> None:
        """End the response without a clean end (our side failed), in a way
        no client mistakes for the end of the file."""
        self.unclean = True
        self.closed = True
        tornado_internals.close_as_failure(self.connection)
