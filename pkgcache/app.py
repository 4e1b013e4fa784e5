"""make_app: the tornado Application, its routes and its shared state."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import httputil
from tornado.web import Application, RequestHandler

from pkgcache.accesslog import log_request
from pkgcache.config import Settings
from pkgcache.download import Download, Downloads
from pkgcache.handler import CacheContext, CacheHandler
from pkgcache.metrics import Metrics
from pkgcache.smallhits import small_hit
from pkgcache.status import StatusHandler
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
    """Build the store, the upstream client, the registry and the metrics."""
    metrics = Metrics()
    store = CacheStore(settings.cache)
    upstream = Upstream(settings, on_attempt=metrics.fetch_done)
    downloads = Downloads(store, upstream)
    metrics.track_downloads(lambda: len(downloads))

    def count_stored(download: Download) -> None:
        if download.published:
            metrics.stored(download.received)

    downloads.on_end.append(count_stored)
    return CacheContext(
        settings, store, upstream, downloads, InFlight(), metrics=metrics
    )


class CacheApplication(Application):
    """tornado's Application, with plain small hits answered before any
    handler is built (``smallhits.py``)."""

    def __init__(self, context: CacheContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate:
        return small_hit(self.context, request) or super().find_handler(
            request, **kwargs
        )


def make_app(context: CacheContext) -> Application:
    """Small hits first, reserved pages under /.pkgcache/, every other path
    to CacheHandler."""

    def log_function(handler: RequestHandler) -> None:
        log_request(handler)
        if isinstance(handler, CacheHandler):
            context.metrics.request_done(handler.result, handler.bytes_sent)

    return CacheApplication(
        context,
        [
            (
                r"/\.pkgcache/(?P<page>metrics|status|status\.json|health)",
                StatusHandler,
                {"context": context},
            ),
            (r"(.*)", CacheHandler, {"context": context}),
        ],
        log_function=log_function,
        compress_response=False,
        serve_traceback=False,
    )
