"""Write to a client's socket beside tornado, when tornado lets us.

Two paths send body bytes without going through tornado's IOStream: big
hits (``sendfile.py``) and live clients of a download (``follow.py``, one
``sendmsg`` per batch of upstream chunks, with no join and no trip through
tornado's write path). Both may write only while tornado has nothing
queued for the connection, so the bytes stay in order, and both count
what they sent against the response's Content-Length (``account``), as
tornado's own writes do, or ``finish()`` would see a short body.
"""

from __future__ import annotations

from tornado.httputil import HTTPConnection
from tornado.iostream import IOStream, SSLIOStream

from pkgcache.batches import IOV_MAX


def usable(connection: HTTPConnection) -> bool:
    """True when this connection's socket and byte count can be reached
    and tornado has nothing queued on it. Plain TCP only: on TLS, bytes
    must go through the TLS layer."""
    stream = getattr(connection, "stream", None)
    return (
        isinstance(stream, IOStream)
        and not isinstance(stream, SSLIOStream)
        and stream.socket is not None
        and not stream.closed()
        and not stream.writing()
        and hasattr(connection, "_expected_content_remaining")
    )


def account(connection: HTTPConnection, size: int) -> None:
    """Count ``size`` body bytes sent beside tornado as written."""
    remaining = connection._expected_content_remaining  # type: ignore[attr-defined]
    if remaining is not None:
        connection._expected_content_remaining = remaining - size  # type: ignore[attr-defined]


def send_buffers(connection: HTTPConnection, chunks: list[bytes]) -> int:
    """Send what the socket takes now; returns the byte count.

    0 means "use tornado": it has bytes queued, the body is chunked (tornado
    frames each write), or the socket is full or broken (tornado then
    waits for it, or reports the closed connection).
    """
    if not usable(connection) or _chunked(connection):
        return 0
    sock = connection.stream.socket  # type: ignore[attr-defined]
    try:
        sent = sock.sendmsg(chunks[:IOV_MAX])
    except OSError:
        return 0
    account(connection, sent)
    return sent


def _chunked(connection: HTTPConnection) -> bool:
    return bool(getattr(connection, "_chunking_output", True)) or (
        getattr(connection, "_expected_content_remaining", None) is None
    )
