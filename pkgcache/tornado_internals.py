"""Every use of tornado's private attributes, and nothing else.

Three things make package-cache fast that tornado offers no API for:

- **Writing beside the IOStream**: a live client of a download gets each
  batch in one ``sendmsg``, and a big hit goes out with ``os.sendfile``,
  both on the connection's socket. This is allowed only while tornado has
  nothing queued for it (so bytes stay in order), never for a chunked body
  (tornado frames each write) or TLS, and what was sent is counted against
  the response's Content-Length as tornado's own writes are, or
  ``finish()`` would see a short body.
- **The curl client's body queue**: tornado 6.6 pauses a transfer when
  1 MiB of body waits for the streaming callback; a larger queue keeps a
  fast download from pausing on every socket event.

``missing_internals`` names what a tornado release no longer has; the test
suite calls it on a real connection, so an upgrade that changes these
attributes fails loudly there, and here the direct paths just switch off.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPConnection
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError

from pkgcache.batches import IOV_MAX

#: The private attributes of ``tornado.http1connection.HTTP1Connection``
#: this module reads or writes.
CONNECTION_INTERNALS = ("stream", "_expected_content_remaining", "_chunking_output")
#: ... and of its ``tornado.iostream.IOStream``.
STREAM_INTERNALS = ("_total_write_done_index",)
#: Most bytes a worker thread sends in one turn; the IOLoop counts them
#: between turns.
SENDFILE_CHUNK = 64 * 1024 * 1024
#: Longest turn of a worker thread on one big hit, so the executor's
#: threads, which other work shares, come free often.
JOB_SECONDS = 0.1
#: Longest a worker thread waits for room in the socket before it hands
#: the wait back to the IOLoop: a client this slow does not hold a thread.
POLL_SECONDS = 0.02
#: Longest wait for writability before looking at the stream again:
#: tornado may drop our write-readiness callback when it updates its own
#: interest in the socket, and closes the socket when the client goes.
RECHECK_SECONDS = 1.0


def missing_internals(connection: HTTPConnection) -> list[str]:
    """The attributes this module relies on that ``connection`` lacks."""
    missing = [name for name in CONNECTION_INTERNALS if not hasattr(connection, name)]
    stream = getattr(connection, "stream", None)
    return missing + [name for name in STREAM_INTERNALS if not hasattr(stream, name)]


def bytes_taken(connection: HTTPConnection) -> int | None:
    """How many bytes tornado has written to this connection's socket so
    far; None when that cannot be known. A send makes progress while this
    grows."""
    stream = getattr(connection, "stream", None)
    count = getattr(stream, "_total_write_done_index", None)
    return count if isinstance(count, int) else None


def can_write_beside(connection: HTTPConnection) -> bool:
    """True when bytes may go to this connection's socket directly now:
    plain TCP, a body of known length, nothing queued in tornado."""
    stream = getattr(connection, "stream", None)
    return (
        isinstance(stream, IOStream)
        and not isinstance(stream, SSLIOStream)
        and stream.socket is not None
        and not stream.closed()
        and not stream.writing()
        and getattr(connection, "_expected_content_remaining", None) is not None
        and getattr(connection, "_chunking_output", True) is False
    )


def _account(connection: HTTPConnection, size: int) -> None:
    """Count ``size`` body bytes sent beside tornado as written."""
    remaining = connection._expected_content_remaining  # type: ignore[attr-defined]
    connection._expected_content_remaining = remaining - size  # type: ignore[attr-defined]


def send_buffers(connection: HTTPConnection, chunks: list[bytes]) -> int:
    """Send what the socket takes now, in one ``sendmsg``; the byte count.

    0 means "use tornado": it has bytes queued, the body is chunked, or the
    socket is full or broken (tornado then waits for it, or reports the
    closed connection).
    """
    if not can_write_beside(connection):
        return 0
    try:
        sent = connection.stream.socket.sendmsg(chunks[:IOV_MAX])  # type: ignore[attr-defined]
    except OSError:
        return 0
    _account(connection, sent)
    return sent


async def send_file(
    connection: HTTPConnection,
    fd: int,
    offset: int,
    count: int,
    on_sent: Callable[[int], None],
    send_timeout: float,
) -> None:
    """Send ``count`` bytes of the file open as ``fd``, from ``offset``, with
    ``os.sendfile``, after tornado wrote the headers and when
    ``can_write_beside`` said yes.

    ``on_sent`` hears of every byte count that left. Raises
    ``StreamClosedError`` when the client went away or took nothing for
    ``send_timeout`` seconds, ``OSError`` when the file ended early.

    The copy runs in a worker thread (sendfile releases the GIL, so several
    big hits use several cores), which keeps the socket full on its own: it
    waits for room with ``poll`` and sends again at once, as long as the
    client keeps taking bytes, up to ``SENDFILE_CHUNK`` bytes or
    ``JOB_SECONDS`` per turn. A round trip through the IOLoop between
    sendfile calls would let the socket run empty on every call. A client
    that takes nothing for ``POLL_SECONDS`` gives the thread back, and the
    IOLoop waits for it instead. The thread works on duplicates of the
    socket's and the file's descriptors, closed only once it is done: if
    tornado closes its socket (the client left) or the caller closes the
    file, neither number can be reused for another socket or file while a
    call is on its way.
    """
    stream: IOStream = connection.stream  # type: ignore[attr-defined]
    assert stream.socket is not None
    loop = asyncio.get_running_loop()
    out = os.dup(stream.socket.fileno())
    try:
        src = os.dup(fd)
    except OSError:
        os.close(out)
        raise
    copy = _Copy(out, src, stream.closed)
    # Without NODELAY, Nagle holds the first file segment back until the
    # client's delayed ACK of the header packet; TCP_CORK (nginx's
    # tcp_nopush) sends only full segments while the file goes out.
    stream.set_nodelay(True)
    _cork(stream, True)
    sent = 0
    last_progress = loop.time()
    try:
        while sent < count:
            if stream.closed():
                raise StreamClosedError()
            size = min(count - sent, SENDFILE_CHUNK)
            done, stop = await loop.run_in_executor(None, copy.run, offset + sent, size)
            if done:
                sent += done
                last_progress = loop.time()
                _account(connection, done)
                on_sent(done)
            if isinstance(stop, (BrokenPipeError, ConnectionError)):
                raise StreamClosedError(real_error=stop)
            if isinstance(stop, OSError):
                raise stop
            if stop is _Stop.ENDED:
                raise OSError(f"the file ended {count - sent} bytes early")
            if stop is _Stop.FULL:
                if loop.time() - last_progress > send_timeout:
                    raise StreamClosedError()  # it stopped reading
                await _writable(loop, copy.out)
    finally:
        _cork(stream, False)
        copy.release()


class _Stop(enum.Enum):
    """Why a worker's turn ended before all its bytes went."""

    #: The socket stayed full for ``POLL_SECONDS``.
    FULL = "full"
    #: The file has no more bytes.
    ENDED = "ended"


class _Copy:
    """One big hit's sendfile loop, run in worker threads turn by turn;
    ``out`` and ``src`` are its own descriptors of the socket and file.

    The IOLoop calls ``release`` once, when it needs no more turns; the
    descriptors are closed then, or, if a turn is still on its way (the
    sending coroutine was cancelled), by that turn when it ends: never
    while a thread may still use them.
    """

    def __init__(self, out: int, src: int, closed: Callable[[], bool]) -> None:
        self.out = out
        self.src = src
        self.closed = closed
        self._lock = threading.Lock()
        self._running = False
        self._released = False

    def run(self, offset: int, size: int) -> tuple[int, _Stop | OSError | None]:
        """Send up to ``size`` bytes from ``offset``; returns how many went,
        and why the turn ended early (None: all went, the time was up, or
        the stream closed: the IOLoop looks again)."""
        with self._lock:
            if self._released:
                return 0, None
            self._running = True
        try:
            return self._send(offset, size)
        finally:
            with self._lock:
                self._running = False
                if self._released:
                    self._close()

    def release(self) -> None:
        with self._lock:
            self._released = True
            if not self._running:
                self._close()

    def _send(self, offset: int, size: int) -> tuple[int, _Stop | OSError | None]:
        sent = 0
        deadline = time.monotonic() + JOB_SECONDS
        poller = select.poll()
        poller.register(self.out, select.POLLOUT)
        while sent < size and not self._released and not self.closed():
            try:
                done = os.sendfile(self.out, self.src, offset + sent, size - sent)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return sent, None
                if not poller.poll(POLL_SECONDS * 1000):
                    return sent, _Stop.FULL
                continue
            except OSError as error:
                return sent, error
            if done == 0:
                return sent, _Stop.ENDED
            sent += done
            if time.monotonic() > deadline:
                break
        return sent, None

    def _close(self) -> None:
        if self.out >= 0:
            os.close(self.out)
            os.close(self.src)
            self.out = self.src = -1


def _cork(stream: IOStream, on: bool) -> None:
    if stream.socket is not None and hasattr(socket, "TCP_CORK"):
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()

    def woken() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, woken)
    try:
        await asyncio.wait_for(ready, RECHECK_SECONDS)
    except TimeoutError:
        pass
    finally:
        if not ready.done():
            ready.cancel()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_writer(fd)


def close_as_failure(connection: HTTPConnection) -> None:
    """Close a response cut short so that every client can tell.

    With a Content-Length or chunked framing a plain close already shows
    the body is incomplete. A body delimited by the close itself (unknown
    length to an HTTP/1.0 client) would look complete: that one is ended
    with a TCP reset instead.
    """
    close_delimited = (
        getattr(connection, "_expected_content_remaining", None) is None
        and getattr(connection, "_chunking_output", True) is False
    )
    stream = getattr(connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if close_delimited and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    close(connection)


def close(connection: HTTPConnection) -> None:
    """Close a client's connection now. ``HTTPConnection`` (the interface
    handlers see) has no ``close``; the server's connections are
    ``HTTP1Connection``, which has."""
    if isinstance(connection, HTTP1Connection):
        connection.close()
    else:
        stream = getattr(connection, "stream", None)
        if stream is not None:
            stream.close()


#: SO_LINGER on with a zero timeout: close() sends RST.
_LINGER_RESET = struct.pack("ii", 1, 0)


def set_stream_queue(curl: Any, size: int) -> bool:
    """Let tornado's curl client queue ``size`` bytes of body for this
    request (``curl`` as given to ``prepare_curl_callback``) before it
    pauses the transfer. False where tornado has no such queue (before
    6.6): it then never pauses, and there is nothing to tune."""
    queue: Any = getattr(curl, "info", {}).get("streaming_buffer")
    if not hasattr(queue, "max_buffer_size"):
        return False
    queue.max_buffer_size = size
    return True
