"""``/v2/``: the base of the container registry API, answered by the
daemon itself when an ``oci`` repository is configured. Clients ask it
first to learn that the registry speaks version 2 and whether it wants
credentials: it never does (``allow`` decides who may pull)."""

from __future__ import annotations

from tornado.web import HTTPError

from pkgcache.observe.results import Result
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.pages import PageHandler


class RegistryBaseHandler(PageHandler):
    """200 with ``Docker-Distribution-API-Version: registry/2.0``."""

    def initialize(self, context: ServingContext) -> None:  # type: ignore[override]
        self.context = context

    def prepare(self) -> None:
        settings = self.context.live.current
        if not allowed(self.request, settings.allow, settings.trusted_proxies):
            self.result = Result.FORBIDDEN
            raise HTTPError(403, "client not allowed")
        if not any(
            repo.settings.kind == "oci"
            for repo in self.context.repositories.repositories
        ):
            self.result = Result.REFUSED
            raise HTTPError(404, "no container registry is configured")

    def get(self) -> None:
        self.result = Result.STATUS
        self.set_header("Docker-Distribution-API-Version", "registry/2.0")
        self.set_header("Content-Type", "application/json")
        self.finish_page("{}")

    def head(self) -> None:
        self.get()
