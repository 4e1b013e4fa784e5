"""make_app: the tornado Application, its one route and its shared state."""

from __future__ import annotations

import asyncio

from tornado.web import Application

from pkgcache.accesslog import log_request
from pkgcache.config import Settings
from pkgcache.download import Downloads
from pkgcache.handler import CacheContext, CacheHandler
from pkgcache.store import CacheStore
from pkgcache.upstream import Upstream


class InFlight:
    """Counts requests being answered, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def make_context(settings: Settings) -> CacheContext:
    """Build the store, the upstream client and the download registry."""
    store = CacheStore(settings.cache)
    upstream = Upstream(settings)
    return CacheContext(
        settings, store, upstream, Downloads(store, upstream), InFlight()
    )


def make_app(context: CacheContext) -> Application:
    """Every path goes to ``CacheHandler``; it sorts hits, joins and misses."""
    return Application(
        [(r"(.*)", CacheHandler, {"context": context})],
        log_function=log_request,
        compress_response=False,
        serve_traceback=False,
    )
