"""Body sources: what a response's body is made of, and how it drains into
a ``ClientOutput``.

The handler first decides the response (``decisions.py``: status, range,
headers) and then hands the body to ``send``, as CPython's
``SimpleHTTPRequestHandler`` splits ``send_head`` from ``copyfile``. Each
source knows its fastest way out:

- ``MemoryBody``: a small file's bytes, kept in memory (one write);
- ``FileBody``: a complete cached file, by ``sendfile`` beside tornado,
  or in large reads when that is not allowed;
- ``GrowingBody``: a download still in flight, followed as it grows
  (``clientstream.py``).

Contract: ``send(output, start, end)`` sends bytes ``start`` to ``end``
(exclusive; None: to the end) and returns True when all of them went out.
On False the caller cuts the connection (unless the client already left).
A source that is not sent (HEAD, 304) holds nothing that needs releasing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Protocol

from tornado.iostream import StreamClosedError

from pkgcache.fetching.download import Download
from pkgcache.serving.clientstream import ClientStream
from pkgcache.serving.output import ClientOutput

log = logging.getLogger("pkgcache.serving")

#: Read size for hits that cannot use sendfile.
HIT_READ_SIZE = 1024 * 1024


class Body(Protocol):
    async def send(self, output: ClientOutput, start: int, end: int | None) -> bool:
        """Send bytes ``start`` to ``end``; True when all went out."""
        ...

    def close(self) -> None:
        """Release what the body holds; called once, sent or not."""


class MemoryBody:
    """A whole file's bytes, already read."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def close(self) -> None:
        pass

    async def send(self, output: ClientOutput, start: int, end: int | None) -> bool:
        output.queue(self.data[start:end])
        try:
            await output.flush()
        except StreamClosedError:
            output.close()
            return False
        return True


class FileBody:
    """A complete file in the cache, of ``size`` bytes, open as ``fd`` (the
    store's confined open: bytes come from the inode that was checked, not
    from whatever the path names by then). ``path`` is for messages."""

    def __init__(self, fd: int, size: int, path: str) -> None:
        self.fd = fd
        self.size = size
        self.path = path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    async def send(self, output: ClientOutput, start: int, end: int | None) -> bool:
        end = self.size if end is None else end
        try:
            await output.flush()  # the headers, before bytes go beside tornado
            if output.can_send_file():
                await output.send_file(self.fd, start, end - start)
            else:
                for chunk in self._chunks(start, end):
                    output.queue(chunk)
                    await output.flush()
        except StreamClosedError:
            output.close()
            return False
        except OSError as error:
            log.error("cannot send %s: %s", self.path, error)
            return False
        return True

    def _chunks(self, start: int, end: int) -> Iterator[bytes]:
        position = start
        while position < end:
            chunk = os.pread(self.fd, min(HIT_READ_SIZE, end - position), position)
            if not chunk:
                raise OSError(f"{self.path} ended {end - position} bytes early")
            position += len(chunk)
            yield chunk


class GrowingBody:
    """A download in flight. Create it in the IOLoop step that saw the
    download STREAMING; ``bound`` is the client's ``client_buffer``."""

    def __init__(self, download: Download, bound: int) -> None:
        self.download = download
        self.bound = bound
        self.stream: ClientStream | None = None

    async def send(self, output: ClientOutput, start: int, end: int | None) -> bool:
        self.stream = ClientStream(output, self.download, self.bound, start, end)
        return await self.stream.run()

    def close(self) -> None:
        pass

    def client_left(self) -> None:
        if self.stream is not None:
            self.stream.client_left()
