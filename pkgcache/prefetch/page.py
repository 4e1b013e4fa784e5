"""``/.pkgcache/prefetch``: GET the last pass of each repository (JSON);
POST ``?repository=NAME`` to start a pass of it now. Open to the networks
in ``status_allow`` only, like the status pages."""

from __future__ import annotations

import json

from tornado.web import HTTPError

from pkgcache.observe.accesslog import escape
from pkgcache.observe.results import Result
from pkgcache.prefetch.passes import Prefetcher
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.pages import PageHandler


class PrefetchHandler(PageHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST")  # type: ignore[assignment]

    def initialize(  # type: ignore[override]
        self, context: ServingContext, prefetcher: Prefetcher
    ) -> None:
        self.context = context
        self.prefetcher = prefetcher
        self.result = Result.STATUS

    def prepare(self) -> None:
        settings = self.context.live.current
        if not allowed(self.request, settings.status_allow, settings.trusted_proxies):
            self.result = Result.FORBIDDEN
            raise HTTPError(
                403,
                "prefetch is not open to %s",
                escape(self.request.remote_ip or "-"),
            )

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")
        passes = {
            name: report.as_dict() for name, report in self.prefetcher.last.items()
        }
        running = sorted(self.prefetcher.running)
        self.finish_page(json.dumps({"last": passes, "running": running}) + "\n")

    def head(self) -> None:
        self.get()

    def post(self) -> None:
        name = self.get_query_argument("repository", "")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if not self.prefetcher.trigger(name):
            raise HTTPError(
                404, "no repository %s that prefetches", escape(name) or "named"
            )
        self.set_status(202)
        self.finish_page(f"prefetch of {name} started\n")
