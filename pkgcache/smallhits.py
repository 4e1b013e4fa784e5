"""Plain GETs of small cached files, answered without a RequestHandler.

A small hit is bound by per-request Python work, and most of it is
tornado's ``RequestHandler``: building the handler, its header object,
``prepare``/``finish`` and their hooks. A GET without Range or conditions
for a small file that is on disk and not downloading needs none of that:
the answer is the file's bytes (``smallfiles.py``) behind fixed headers.
``app.py`` asks ``small_hit`` first for every request; anything it does not
take (a miss, a join, a big file, Range, 304 checks, HEAD, a refused path,
a client outside ``allow``) goes the general way through ``handler.py``,
which sends the same headers for the same file.
"""

from __future__ import annotations

from tornado import httputil
from tornado.httputil import HTTPServerRequest, ResponseStartLine

from pkgcache import headers
from pkgcache.accesslog import log_access
from pkgcache.clients import client_in, resolve_client
from pkgcache.handler import CacheContext
from pkgcache.paths import PathRefused, cache_key
from pkgcache.smallfiles import SmallFiles
from pkgcache.store import CachedFile, OutsideCache, PathConflict

#: Request headers that need tornado's general path (206, 304).
_GENERAL_PATH_HEADERS = ("Range", "If-None-Match", "If-Modified-Since")


def small_hit(context: CacheContext, request: HTTPServerRequest) -> SmallHit | None:
    """The answer to ``request`` when it is a plain GET of a small cached
    file from an allowed client; None sends it the general way."""
    if request.method != "GET":
        return None
    request_headers = request.headers
    for name in _GENERAL_PATH_HEADERS:
        if name in request_headers:
            return None
    try:
        key = cache_key(request.uri or "/")
    except PathRefused:
        return None
    if context.downloads.get(key) is not None:
        return None
    try:
        cached = context.store.lookup(key)
    except (OutsideCache, PathConflict):
        return None
    if cached is None or not SmallFiles.fits(cached.stat):
        return None
    settings = context.settings
    if settings.trusted_proxies:
        resolve_client(request, settings.trusted_proxies)
    if not settings.allows_everyone and not client_in(
        request.remote_ip, settings.allow
    ):
        return None
    try:
        data = context.small_files.read(cached.path, cached.stat)
    except OSError:
        return None  # culled meanwhile: the general path says what is left
    return SmallHit(context, request, cached, data)


class SmallHit(httputil.HTTPMessageDelegate):
    """Sends one small file, read when the headers came, once the request
    has been read (a GET body, if any, is read and dropped by tornado's
    connection). Nothing here touches the disk but the access time, so
    nothing can fail between the headers and the answer."""

    def __init__(
        self,
        context: CacheContext,
        request: HTTPServerRequest,
        cached: CachedFile,
        data: bytes,
    ) -> None:
        self.context = context
        self.request = request
        self.cached = cached
        self.data = data

    def finish(self) -> None:
        context = self.context
        cached = self.cached
        data = self.data
        context.store.touch(cached.path, cached.stat)
        response = httputil.HTTPHeaders()
        response["Server"] = headers.SERVER
        response["Date"] = headers.now_http_date()
        response["Content-Length"] = str(len(data))
        response["X-Package-Cache"] = "hit"
        response.update(headers.file_headers(cached.path, cached.stat))
        connection = self.request.connection
        assert connection is not None
        # Logged and counted before the bytes go: whoever got the answer
        # finds its access line and its count.
        context.metrics.request_done("hit", len(data))
        log_access(self.request, 200, len(data), "hit")
        # In flight until the bytes left, so a graceful stop waits for a
        # slow reader of a small hit as for any other request.
        context.in_flight.started()
        sent = connection.write_headers(
            ResponseStartLine("", 200, "OK"), response, data
        )
        connection.finish()
        sent.add_done_callback(lambda _sent: context.in_flight.finished())
