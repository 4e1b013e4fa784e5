"""The tornado Application: small hits first, then the routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tornado import httputil
from tornado.web import Application, RequestHandler

from pkgcache.observe.accesslog import log_request
from pkgcache.serving.context import ServingContext
from pkgcache.serving.handler import CacheHandler
from pkgcache.serving.ocibase import RegistryBaseHandler
from pkgcache.serving.smallhits import small_hit
from pkgcache.serving.status import StatusHandler


class CacheApplication(Application):
    """tornado's Application, with small hits answered before any handler
    is built (``smallhits.py``), through its documented ``find_handler``."""

    def __init__(self, context: ServingContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def find_handler(  # type: ignore[override]
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate:
        """A small hit answers without a handler; tornado's ``_execute``
        is only ever called on what ``super().find_handler`` gives."""
        return small_hit(self.context, request) or super().find_handler(
            request, **kwargs
        )


def make_app(
    context: ServingContext, pages: Sequence[tuple[str, Any, dict[str, Any]]] = ()
) -> Application:
    """Reserved pages under /.pkgcache/ (``pages``: more of them, made by
    the wiring), every other path to CacheHandler; every answer logged
    and counted when it ends."""

    def log_function(handler: RequestHandler) -> None:
        log_request(handler)
        if isinstance(handler, CacheHandler):
            context.metrics.request_done(
                handler.result,
                handler.output.sent,
                handler.repository,
                handler.request.request_time(),
            )
            context.board.request_done(
                handler.request,
                handler.get_status(),
                handler.result,
                handler.output.sent,
                handler.repository,
            )
            context.demand.asked(
                handler.repository, handler.request.path, handler.result
            )

    return CacheApplication(
        context,
        [
            (
                r"/\.pkgcache/(?P<page>metrics|status|status\.json|health)",
                StatusHandler,
                {"context": context},
            ),
            (r"/v2/?", RegistryBaseHandler, {"context": context}),
            *pages,
            (r"(.*)", CacheHandler, {"context": context}),
        ],
        log_function=log_function,
        compress_response=False,
        serve_traceback=False,
    )
