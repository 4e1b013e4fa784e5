"""Accepting client connections, and pausing when the process runs out of
descriptors.

tornado's ``netutil.add_accept_handler`` (behind ``HTTPServer.add_sockets``)
lets an ``OSError`` from ``accept()`` escape. At the descriptor limit
(EMFILE) the listening socket stays readable, so the IOLoop calls the
handler again at once and asyncio logs a traceback for every try: a busy
loop that wrote megabytes of log a second while the clients already
connected were starved of the one core.

``Acceptor`` is the same loop (at most ``ACCEPTS_PER_EVENT`` connections
per readiness event, each handed to ``HTTPServer.handle_stream`` in an
``IOStream`` made as ``TCPServer._handle_connection`` makes it), except
that when ``accept()`` fails for want of descriptors or memory it stops
watching that socket, logs one warning, and looks again after a back-off
(``BACKOFF_FIRST`` doubling to ``BACKOFF_MAX``). Connections that arrive
meanwhile wait in the kernel's listen queue. The first connection
accepted afterwards logs one line saying so.

A connection whose first byte is a TLS record header (0x16, a handshake:
a ClientHello) is closed at once. Clients told a registry is "insecure"
(skopeo, podman, containerd) try HTTPS first on the same port, and would
otherwise wait for the request line tornado waits for, about ten seconds
a pull; closed, they fall back to plain HTTP at once (as the
distribution registry does). The first byte is peeked (it stays for
tornado); when none has arrived yet, the connection waits for it here,
at most the server's header timeout, before tornado gets it.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import time
from collections.abc import Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

log = logging.getLogger("pkgcache.accepting")

#: Connections accepted per readiness event before other callbacks run:
#: tornado's own bound (``netutil._DEFAULT_BACKLOG``).
ACCEPTS_PER_EVENT = 128
#: Seconds before the first look after ``accept()`` ran out of descriptors;
#: doubled at each failed look, up to ``BACKOFF_MAX``.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 1.0

#: The first byte of a TLS handshake record (RFC 8446 5.1: ContentType 22).
TLS_HANDSHAKE = 0x16

#: What a full descriptor table or a short memory looks like from accept().
_OUT_OF_RESOURCES = {
    errno.EMFILE: "out of file descriptors",
    errno.ENFILE: "the system is out of file descriptors",
    errno.ENOBUFS: "out of socket buffers",
    errno.ENOMEM: "out of memory",
}
#: Errors of one connection that died in the accept queue; Linux's accept(2)
#: asks callers to retry on them as on EAGAIN. The next one may be fine.
_DEAD_CONNECTION = {
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "EPERM",  # a firewall rule refused it
    )
    if hasattr(errno, name)
}


class Acceptor:
    """Accepts connections on ``sockets`` for ``server`` until ``stop()``."""

    def __init__(self, server: HTTPServer, sockets: Iterable[socket.socket]) -> None:
        self.server = server
        self.sockets = list(sockets)
        self._listeners = [_Listener(self, sock) for sock in self.sockets]
        self.stopped = False

    def start(self) -> None:
        for listener in self._listeners:
            listener.watch()

    def stop(self) -> None:
        """Stop accepting and close the listening sockets (as
        ``TCPServer.stop``); connections already accepted go on."""
        if self.stopped:
            return
        self.stopped = True
        for listener in self._listeners:
            listener.close()

    def handle(self, connection: socket.socket, address: Any) -> None:
        """One accepted connection: closed if it starts a TLS handshake,
        else handed to the HTTP server once its first byte is here."""
        first = _peek(connection)
        if first is None:
            self._await_first_byte(connection, address)
        elif first and first[0] != TLS_HANDSHAKE:
            self.hand_over(connection, address)
        else:
            connection.close()

    def _await_first_byte(self, connection: socket.socket, address: Any) -> None:
        """Look again when the connection is readable; close it if nothing
        came within the header timeout."""
        io_loop = IOLoop.current()
        fd = connection.fileno()

        def give_up() -> None:
            io_loop.remove_handler(fd)
            connection.close()

        limit = self.server.conn_params.header_timeout or 3600.0
        timeout = io_loop.call_later(limit, give_up)

        def readable(_fd: int, _events: int) -> None:
            io_loop.remove_handler(fd)
            io_loop.remove_timeout(timeout)
            first = _peek(connection)
            if first:
                self.handle(connection, address)
            elif first is None:  # woken without data: wait again
                self._await_first_byte(connection, address)
            else:
                connection.close()

        io_loop.add_handler(fd, readable, IOLoop.READ)

    def hand_over(self, connection: socket.socket, address: Any) -> None:
        """One accepted connection to the HTTP server (``TCPServer.
        _handle_connection`` without TLS, which clients never get here)."""
        try:
            stream = IOStream(
                connection,
                max_buffer_size=self.server.max_buffer_size,
                read_chunk_size=self.server.read_chunk_size,
            )
            self.server.handle_stream(stream, address)
        except Exception:
            log.error("error in connection callback", exc_info=True)
            connection.close()


class _Listener:
    """One listening socket: watched, or paused with a back-off timer."""

    def __init__(self, acceptor: Acceptor, sock: socket.socket) -> None:
        self.acceptor = acceptor
        self.sock = sock
        self.fd = sock.fileno()
        self.name = address_of(sock)
        self.io_loop = IOLoop.current()
        self.watched = False
        self.retry: object | None = None
        self.backoff = BACKOFF_FIRST
        #: monotonic time accept() first failed, while it keeps failing.
        self.failing_since: float | None = None

    def watch(self) -> None:
        self.retry = None
        if not self.acceptor.stopped and not self.watched:
            self.io_loop.add_handler(self.fd, self.on_readable, IOLoop.READ)
            self.watched = True

    def close(self) -> None:
        if self.watched:
            self.io_loop.remove_handler(self.fd)
            self.watched = False
        if self.retry is not None:
            self.io_loop.remove_timeout(self.retry)
            self.retry = None
        self.sock.close()

    def on_readable(self, _fd: int, _events: int) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            if not self.watched:
                return  # stopped by a callback of the previous connection
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return  # accepted every connection waiting
            except OSError as error:
                if error.errno in _DEAD_CONNECTION:
                    continue
                self.pause(error)
                return
            if self.failing_since is not None:
                self.recovered()
            self.acceptor.handle(connection, address)

    def pause(self, error: OSError) -> None:
        """Stop watching the socket and look again after the back-off. Only
        the first failure of a run of them is logged."""
        self.io_loop.remove_handler(self.fd)
        self.watched = False
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            self.backoff = BACKOFF_FIRST
            log.warning(
                "%s (%s): not accepting connections on %s for a moment",
                _OUT_OF_RESOURCES.get(error.errno or 0)
                or f"accept() failed: {error.strerror or error}",
                _descriptors(error.errno),
                self.name,
            )
        else:
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.retry = self.io_loop.call_later(self.backoff, self.watch)

    def recovered(self) -> None:
        assert self.failing_since is not None
        log.warning(
            "accepting connections on %s again (paused for %.1f s)",
            self.name,
            time.monotonic() - self.failing_since,
        )
        self.failing_since = None
        self.backoff = BACKOFF_FIRST


def _peek(connection: socket.socket) -> bytes | None:
    """The connection's first byte, left in place; b"" when it closed or
    failed, None when nothing has arrived yet."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _descriptors(error: int | None) -> str:
    """``"N open, limit M"``. Counting takes a descriptor: when there is
    none, at EMFILE, every one up to the limit is open."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        count = str(len(os.listdir("/proc/self/fd")) - 1)  # less the listing's
    except OSError:
        count = str(limit) if error == errno.EMFILE else "?"
    return f"{count} open, limit {limit}"


def address_of(sock: socket.socket) -> str:
    """``host:port`` of a listening socket, ``[host]:port`` for IPv6."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
