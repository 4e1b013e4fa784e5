"""An origin that sends files at a steady rate, like a network link (W5).

``python bench/pacedorigin.py PORT ROOT`` serves the files in ROOT over
HTTP/1.1. The first path segment names the rate: ``/gbit4/name`` sends
``ROOT/name`` at 4 Gbit/s. The kernel paces the connection
(``SO_MAX_PACING_RATE``, TCP's own pacing since Linux 4.20) and the file goes
out with ``sendfile``, so a receiver that pauses for a millisecond catches up
afterwards, as it would behind a real link.

``/gbit4d/name`` does the same and states the file's SHA-256 in a
``Repr-Digest`` header (RFC 9530), so package-cache checks what it stores
(the digest of each file is computed once, at its first request: a HEAD
warms it).

nginx's ``limit_rate`` is the wrong tool at these rates: it sleeps a whole
number of milliseconds after each write, so the rate it gives depends on how
full the receiver's socket buffer was at each write. The same curl download
at "4 Gbit/s" came out at either 380 or 470 MiB/s, run to run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import sys
import threading
from typing import BinaryIO

#: Linux's socket option number (asm-generic/socket.h); Python has no name.
SO_MAX_PACING_RATE = 47
REQUEST_LINE = re.compile(rb"^(GET|HEAD) /gbit(\d+)(d?)/([^/\s]+) HTTP/1\.[01]\r\n")
#: (inode, mtime) -> the file's SHA-256; the bench's files are hard links.
_DIGESTS: dict[tuple[int, int], bytes] = {}


def _repr_digest(file: BinaryIO) -> bytes:
    result = os.fstat(file.fileno())
    identity = (result.st_ino, result.st_mtime_ns)
    if identity not in _DIGESTS:
        digest = hashlib.sha256()
        while chunk := file.read(4 * 1024 * 1024):
            digest.update(chunk)
        file.seek(0)
        _DIGESTS[identity] = base64.b64encode(digest.digest())
    return b"Repr-Digest: sha-256=:%s:\r\n" % _DIGESTS[identity]


def answer(connection: socket.socket, root: str) -> None:
    """Serve one request, then close (``Connection: close``)."""
    with connection:
        request = b""
        while b"\r\n\r\n" not in request:
            data = connection.recv(4096)
            if not data or len(request) > 65536:
                return
            request += data
        match = REQUEST_LINE.match(request)
        path = os.path.join(root, match.group(4).decode()) if match else ""
        if not match or not os.path.isfile(path):
            connection.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
            return
        bytes_per_second = int(match.group(2)) * 125_000_000
        connection.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, bytes_per_second)
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            digest = _repr_digest(file) if match.group(3) else b""
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n%sConnection: close\r\n\r\n" % (size, digest)
            )
            if match.group(1) == b"GET":
                connection.sendfile(file)


def main(port: int, root: str) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        connection, _address = listener.accept()
        threading.Thread(target=answer, args=(connection, root), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
