"""make_app: the tornado Application, its one route and its shared state."""

from __future__ import annotations

from tornado.web import Application

from pkgcache.accesslog import log_request
from pkgcache.config import Settings
from pkgcache.download import Downloads
from pkgcache.handler import CacheContext, CacheHandler
from pkgcache.store import CacheStore
from pkgcache.upstream import Upstream


def make_context(settings: Settings) -> CacheContext:
    """Build the store, the upstream client and the download registry."""
    store = CacheStore(settings.cache)
    upstream = Upstream(settings)
    return CacheContext(settings, store, upstream, Downloads(store, upstream))


def make_app(context: CacheContext) -> Application:
    """Every path goes to ``CacheHandler``; it sorts hits, joins and misses."""
    return Application(
        [(r"(.*)", CacheHandler, {"context": context})],
        log_function=log_request,
        compress_response=False,
        serve_traceback=False,
    )
