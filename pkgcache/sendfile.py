"""Send part of a file to a client with ``os.sendfile``.

tornado has no sendfile: its hits read the file into Python and write it
to the socket, which costs a big hit about a fifth of nginx's speed. This
hands the bytes to the kernel instead, on the connection's socket, once
tornado has written the headers and has nothing else queued.

Two bits of care with tornado's IOStream: (1) tornado may drop our
write-readiness callback when it updates its own interest in the socket,
and closes the socket when the client goes, so a wait for writability also
wakes up every second to look again; (2) the HTTP connection counts the
body bytes it wrote against Content-Length, so the bytes sent here are
counted for it (``account``), or ``finish()`` would see a short body.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from tornado.httputil import HTTPConnection
from tornado.iostream import IOStream, StreamClosedError

from pkgcache.direct import account

#: Bytes per sendfile call; the loop gets a turn between calls.
SENDFILE_CHUNK = 16 * 1024 * 1024
#: Longest wait for writability before looking at the stream again.
RECHECK_SECONDS = 1.0


async def send_range(
    connection: HTTPConnection, path: str, offset: int, count: int
) -> int:
    """Send ``count`` bytes of ``path`` from ``offset``; returns bytes sent.

    Raises ``StreamClosedError`` when the client went away, ``OSError``
    when the file ended early.
    """
    stream: IOStream = connection.stream  # type: ignore[attr-defined]
    # Without NODELAY, Nagle holds the first file segment back until the
    # client's delayed ACK of the header packet: 40 ms on every big hit.
    # TCP_CORK (as nginx's tcp_nopush) sends only full segments while the
    # file goes out: a quarter more throughput on loopback here.
    stream.set_nodelay(True)
    _cork(stream, True)
    try:
        return await _send_loop(connection, stream, path, offset, count)
    finally:
        _cork(stream, False)


async def _send_loop(
    connection: HTTPConnection, stream: IOStream, path: str, offset: int, count: int
) -> int:
    """The copy runs in worker threads (sendfile releases the GIL), so
    several big hits use several cores, as nginx's workers do. The threads
    write through a duplicate of the socket's descriptor: if tornado closes
    its own (the client left), ours cannot be reused for another
    connection while a call is on its way."""
    loop = asyncio.get_running_loop()
    sent = 0
    assert stream.socket is not None
    out = os.dup(stream.socket.fileno())
    try:
        with open(path, "rb", buffering=0) as file:
            while sent < count:
                if stream.closed():
                    raise StreamClosedError()
                size = min(count - sent, SENDFILE_CHUNK)
                try:
                    done = await loop.run_in_executor(
                        None, os.sendfile, out, file.fileno(), offset + sent, size
                    )
                except BlockingIOError:
                    await _writable(loop, out)
                    continue
                except (BrokenPipeError, ConnectionError) as error:
                    raise StreamClosedError(real_error=error) from None
                if done == 0:
                    raise OSError(f"{path} ended {count - sent} bytes early")
                sent += done
                account(connection, done)
    finally:
        os.close(out)
    return sent


def _cork(stream: IOStream, on: bool) -> None:
    if stream.socket is not None and hasattr(socket, "TCP_CORK"):
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, RECHECK_SECONDS)
    except TimeoutError:
        pass
    finally:
        if not ready.done():
            ready.cancel()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_writer(fd)
