"""A real upstream for the tests: a Tornado app on a loopback port.

Paths are ``/<mode>/files/<size>/<name>``; a test picks the behaviour by
giving the proxy ``http://127.0.0.1:PORT/<mode>`` as a source. The bytes of
a file depend only on its name and size (``content(name, size)``), so a
test knows what a client must receive. Modes:

- ``ok``: the file, with Content-Length and Last-Modified.
- ``chunked``: the file without Content-Length.
- ``crumbs``: as ``chunked``, in HTTP chunks of 64 bytes written at once
  (libcurl hands each one over on its own).
- ``slow``: the file at ``Origin.rate`` bytes per second.
- ``late``: sends the head at once and the body 2 seconds later.
- ``flaky``: the first request of a file is cut in the middle (as in
  ``truncate``), later ones honour ``Range``/``If-Range``.
- ``brittle``: honours ``Range`` but cuts every answer in the middle.
- ``shifty``: as ``flaky``, but the ETag changes on every request.
- ``liar``: as ``flaky``, but a 206 claims a different total length.
- ``truncate``: promises the full length, sends half, closes; ignores Range.
- ``chunkcut``: as ``chunked`` at ``Origin.rate``, but closes after half
  the body, without the last chunk.
- ``stall``: sends half, then nothing (until the client gives up).
- ``cookie``: as ``ok``, with Set-Cookie and hop-by-hop headers.
- ``e404``, ``e500``: an HTML error page with that status.
- ``redirect``: 302 to the same file under ``ok``.
- ``dirredirect``: a name without a dot is a folder: 301 to the path with a
  ``/`` appended, which answers an HTML index with 200 (what mirrors do);
  other names are served as in ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import threading
from collections import Counter
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
LAST_MODIFIED_EPOCH = 1445412480
PIECE = 64 * 1024
CRUMB = 64

_content_cache: dict[tuple[str, int], bytes] = {}


def content(name: str, size: int) -> bytes:
    """The deterministic bytes of file ``name`` of ``size`` bytes."""
    key = (name, size)
    if key not in _content_cache:
        seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
        generator = random.Random(seed)
        pieces = [
            generator.randbytes(min(16 << 20, size - start))
            for start in range(0, size, 16 << 20)
        ]
        _content_cache[key] = b"".join(pieces)
    return _content_cache[key]


class FileHandler(tornado.web.RequestHandler):
    def initialize(self, origin: Origin) -> None:
        self.origin = origin

    async def head(self, mode: str, size: str, name: str) -> None:
        await self.get(mode, size, name, include_body=False)

    async def get(
        self, mode: str, size_text: str, name: str, include_body: bool = True
    ) -> None:
        self.origin.requests[self.request.path] += 1
        self.origin.log.append((self.request.method, self.request.uri))
        self.origin.active += 1
        self.origin.max_active = max(self.origin.max_active, self.origin.active)
        try:
            await self._answer(mode, size_text, name, include_body)
        finally:
            self.origin.active -= 1

    async def _answer(
        self, mode: str, size_text: str, name: str, include_body: bool
    ) -> None:
        if name.endswith("/"):
            self.set_header("Content-Type", "text/html")
            self.finish("<html><body>Index of folder</body></html>")
            return
        size = int(size_text)
        if mode in ("e404", "e500"):
            self.set_status(int(mode[1:]))
            self.set_header("Content-Type", "text/html")
            self.finish(f"<html><body>error page {mode}</body></html>")
            return
        if mode == "redirect":
            self.redirect(f"/ok/files/{size}/{name}")
            return
        if mode == "dirredirect" and "." not in name:
            self.redirect(f"/{mode}/files/{size}/{name}/", permanent=True)
            return
        self.set_header("Last-Modified", LAST_MODIFIED)
        self.set_header("Content-Type", "application/x-tar")
        if mode == "cookie":
            self.set_header("Set-Cookie", "session=secret")
            self.set_header("X-Origin-Secret", "do not pass on")
            self.set_header("Keep-Alive", "timeout=5")
            self.set_header("Upgrade", "h2c")
        body = content(name.rsplit("/", 1)[-1], size)
        start = self._range_start(mode, size)
        if start:
            total = size + 1 if mode == "liar" else size
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{size - 1}/{total}")
            body = body[start:]
        if mode not in ("chunked", "crumbs", "chunkcut"):
            self.set_header("Content-Length", len(body))
        if not include_body:
            return
        first = self.origin.requests[self.request.path] == 1
        if (mode in ("flaky", "shifty", "liar") and first) or mode == "brittle":
            mode = "truncate"
        with contextlib.suppress(StreamClosedError):
            await self._send(mode, body)

    def _range_start(self, mode: str, size: int) -> int:
        """Range support (bytes=N-) with If-Range, for the resume tests.

        ``shifty`` changes its ETag on every request, so If-Range never
        matches and the whole file comes back with 200.
        """
        count = self.origin.requests[self.request.path]
        etag = f'"v{count}"' if mode == "shifty" else f'"{size}"'
        self.set_header("ETag", etag)
        header = self.request.headers.get("Range", "")
        if mode == "truncate":
            return 0  # a mirror that cannot resume
        if not header.startswith("bytes=") or not header.endswith("-"):
            return 0
        if_range = self.request.headers.get("If-Range")
        if if_range and if_range not in (etag, LAST_MODIFIED):
            return 0
        start = int(header[6:-1])
        return start if 0 < start < size else 0

    async def _send(self, mode: str, body: bytes) -> None:
        if mode == "late":
            await self.flush()
            await asyncio.sleep(2)
        cut = ("truncate", "stall", "chunkcut")
        end = len(body) // 2 if mode in cut else len(body)
        if mode == "crumbs":
            await self.flush()  # the head, announcing a chunked body
            pieces = (body[start : start + CRUMB] for start in range(0, end, CRUMB))
            framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
            await self.request.connection.stream.write(framed)  # in one go
            self.finish()  # the last, empty chunk
            return
        delay = PIECE / self.origin.rate if mode in ("slow", "chunkcut") else 0
        for start in range(0, end, PIECE):
            self.write(body[start : min(end, start + PIECE)])
            await self.flush()
            if delay:
                await asyncio.sleep(delay)
        if mode in ("truncate", "chunkcut"):
            self.request.connection.close()
            return
        if mode == "stall":
            await asyncio.sleep(3600)
        self.finish()


class Origin:
    """Runs the origin app on its own IOLoop thread; ``url`` is its base."""

    def __init__(self, rate: int = 2_000_000, ssl_options: Any = None) -> None:
        self.rate = rate
        self.requests: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.log: list[tuple[str, str]] = []
        self._ssl_options = ssl_options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_options else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def source(self, mode: str) -> str:
        return f"{self.url}/{mode}"

    def count(self, mode: str, size: int, name: str) -> int:
        return self.requests[f"/{mode}/files/{size}/{name}"]

    def start(self) -> Origin:
        threading.Thread(target=self._thread, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("origin did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = tornado.web.Application(
            [(r"/(\w+)/files/(\d+)/(.+)", FileHandler, {"origin": self})]
        )
        server = HTTPServer(app, ssl_options=self._ssl_options)
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server.add_sockets(sockets)
        self._ready.set()
        self._loop.run_forever()
