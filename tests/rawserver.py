"""An upstream on raw sockets, for responses no HTTP library sends: both
Transfer-Encoding and Content-Length, 206s that ignore If-Range, and so
on. Each connection's request head is read and handed to ``respond``,
which writes whatever it likes on the socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Responder = Callable[[socket.socket, bytes, int], None]


class RawServer:
    """A listening socket on 127.0.0.1; ``requests`` holds each request head."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RawServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
            except OSError:
                return
            self.requests.append(head)
            with contextlib.suppress(OSError):
                self.respond(conn, head, len(self.requests) - 1)


def header(head: bytes, name: str) -> str | None:
    """The value of request header ``name`` in ``head``, or None."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
