"""The reserved pages under ``/.pkgcache/``: metrics, status, health.

``paths.py`` refuses every path segment starting with ``.``, so these can
never shadow a cached file. Metrics and status show what the cache holds
and who asks for it: only networks in ``status_allow`` (default loopback)
may read them. ``health`` answers every client the cache serves, for load
balancer checks.
"""

from __future__ import annotations

import json

from tornado.web import HTTPError, stream_request_body

from pkgcache.observe.accesslog import escape
from pkgcache.observe.results import Result
from pkgcache.observe.snapshot import snapshot
from pkgcache.observe.statuspage import render_html
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.pages import PageHandler


@stream_request_body
class StatusHandler(PageHandler):
    """GET /.pkgcache/{metrics,status,status.json,health}."""

    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, context: ServingContext) -> None:  # type: ignore[override]
        self.context = context
        self.result = Result.STATUS

    def prepare(self) -> None:
        settings = self.context.live.current
        page = self.path_kwargs.get("page")
        networks = settings.allow if page == "health" else settings.status_allow
        if not allowed(self.request, networks, settings.trusted_proxies):
            self.result = Result.FORBIDDEN
            raise HTTPError(
                403,
                "status pages are not open to %s",
                escape(self.request.remote_ip or "-"),
            )

    def get(self, page: str) -> None:
        self.set_header("Cache-Control", "no-store")
        if page == "health":
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish_page("ok\n")
        elif page == "metrics":
            self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.finish_page(self.context.metrics.exposition().decode())
        elif page == "status.json":
            self.set_header("Content-Type", "application/json")
            text = json.dumps(self._snapshot(), separators=(",", ":"))
            self.finish_page(text + "\n")
        else:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish_page(render_html(self._snapshot()))

    def head(self, page: str) -> None:
        self.get(page)

    def _snapshot(self) -> dict[str, object]:
        context = self.context
        return snapshot(
            context.metrics,
            context.usage,
            context.downloads,
            context.live.current,
            context.clock,
            context.started,
            context.board,
        )
