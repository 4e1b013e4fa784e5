"""A mirror for the package-manager tests: a folder served over HTTP on a
loopback port by tornado's StaticFileHandler (Last-Modified, ETag, Range,
If-Modified-Since, like a real mirror), with a count of requests per path
so a test can tell what reached the origin."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from pathlib import Path

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets


class _CountingFiles(tornado.web.StaticFileHandler):
    def compute_etag(self) -> str | None:
        """Size and mtime, as mirrors do: tornado's own content hash is
        remembered per path forever, so a republished file kept its ETag."""
        result = os.stat(self.absolute_path) if self.absolute_path else None
        return (
            None if result is None else f'"{result.st_size:x}-{result.st_mtime_ns:x}"'
        )

    def prepare(self) -> None:
        mirror: StaticOrigin = self.settings["mirror"]
        mirror.requests[self.request.path] += 1
        mirror.log.append((self.request.method or "", self.request.path))


class StaticOrigin:
    """Serves ``root`` at ``url``; ``requests[path]`` counts what was asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StaticOrigin:
        threading.Thread(target=self._thread, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("static origin did not start")
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection (later
        connections are refused, as from a mirror that is gone), then stop
        the loop. Stopping twice is harmless."""
        if self._loop is None or self._server is None:
            return
        self._server, server = None, self._server

        async def close() -> None:
            server.stop()
            await server.close_all_connections()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def count(self, suffix: str) -> int:
        """Requests for paths ending in ``suffix``."""
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))

    def _thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = tornado.web.Application(
            [(r"/(.*)", _CountingFiles, {"path": str(self.root)})], mirror=self
        )
        server = self._server = HTTPServer(app)
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server.add_sockets(sockets)
        self._ready.set()
        self._loop.run_forever()
