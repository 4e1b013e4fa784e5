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

from tests.loopback import LoopbackServer


class _CountingFiles(tornado.web.StaticFileHandler):
    def compute_etag(self) -> str | None:
        """Size and mtime, as mirrors do: tornado's own content hash is
        remembered per path forever, so a republished file kept its ETag."""
        result = os.stat(self.absolute_path) if self.absolute_path else None
        return (
            None if result is None else f'"{result.st_size:x}-{result.st_mtime_ns:x}"'
        )

    async def prepare(self) -> None:
        mirror: StaticOrigin = self.settings["mirror"]
        mirror.requests[self.request.path] += 1
        mirror.log.append((self.request.method or "", self.request.path))
        for suffix, (arrived, release) in list(mirror.held.items()):
            if self.request.path.endswith(suffix):
                arrived.set()
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, release.wait, 60)


class StaticOrigin(LoopbackServer):
    """Serves ``root`` at ``url``; ``requests[path]`` counts what was asked."""

    what = "static origin"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        #: Paths ending in a key wait for its second event before they are
        #: answered; the first is set when such a request arrives.
        self.held: dict[str, tuple[threading.Event, threading.Event]] = {}

    def hold(self, suffix: str) -> tuple[threading.Event, threading.Event]:
        """Hold requests for paths ending in ``suffix``: (arrived, release)."""
        events = (threading.Event(), threading.Event())
        self.held[suffix] = events
        return events

    def count(self, suffix: str) -> int:
        """Requests for paths ending in ``suffix``."""
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application(
            [(r"/(.*)", _CountingFiles, {"path": str(self.root)})], mirror=self
        )
