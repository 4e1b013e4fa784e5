"""GETs of small cached files, answered without a RequestHandler.

A small hit is bound by per-request Python work, and most of it is
tornado's ``RequestHandler``: building the handler, its header object,
``prepare``/``finish`` and their hooks. A GET of a small file that is on
disk and not downloading needs none of that: the answer is the file's
bytes (``smallfiles.py``) behind the same headers and the same decision
(``decisions.py``: Range, conditions) as the general path. ``app.py`` asks
``small_hit`` first for every request; anything it does not take (a miss,
a join, a big file, HEAD, a refused path, a client outside ``allow``, a
path whose rules are not "cached forever") goes the general way through
``handler.py``.
"""

from __future__ import annotations

from tornado import httputil
from tornado.httputil import HTTPServerRequest, ResponseStartLine

from pkgcache.observe.accesslog import log_access
from pkgcache.observe.results import Result
from pkgcache.registries.fronts import KINDS as REGISTRY_KINDS
from pkgcache.registries.targets import Target
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.serving import headers
from pkgcache.serving.choice import Action, Situation, choose
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.decisions import Answer, decide
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.paths import CacheKey, PathRefused, RequestPath, cache_key
from pkgcache.store.smallfiles import SmallFiles


def small_hit(context: ServingContext, request: HTTPServerRequest) -> SmallHit | None:
    """The answer to ``request`` when it is a GET of a small cached file
    from an allowed client; None sends it the general way."""
    if request.method != "GET":
        return None
    try:
        key = cache_key(request.uri or "/")
    except PathRefused:
        return None
    rules = context.repositories.rules_for(key)
    if rules is None or rules.policy is Policy.PASS:
        return None
    if rules.repository.settings.kind in REGISTRY_KINDS and not _registry_file(
        context, rules, key, request
    ):
        return None
    if context.downloads.get(key) is not None:
        return None
    try:
        cached = context.store.lookup(key)
    except (OutsideCache, PathConflict):
        return None
    if cached is None or not SmallFiles.fits(cached.stat):
        return None
    if not _stored_copy_answers(context, rules, key, cached):
        return None
    settings = context.live.current
    if not allowed(request, settings.allow, settings.trusted_proxies):
        return None

    def verified() -> str | None:
        recorded = context.meta.read(key, cached.stat)
        if recorded is None or not recorded.verified:
            return None
        return "hit verified=" + recorded.verified.split(":", 1)[0]

    try:
        data = context.small_files.read(
            cached.path,
            cached.stat,
            lambda: context.store.open_verified(cached),
            verified,
        )
    except (OSError, OutsideCache):
        return None  # culled or swapped meanwhile: the general path says
    return SmallHit(context, request, cached, data, rules.repository.name)


class SmallHit(httputil.HTTPMessageDelegate):
    """Sends one small file, read when the headers came, once the request
    has been read (a GET body, if any, is read and dropped by tornado's
    connection). Nothing here touches the disk but the access time, so
    nothing can fail between the headers and the answer."""

    def __init__(
        self,
        context: ServingContext,
        request: HTTPServerRequest,
        cached: CachedFile,
        data: bytes,
        repository: str,
    ) -> None:
        self.context = context
        self.repository = repository
        self.request = request
        self.cached = cached
        self.data = data

    def finish(self) -> None:
        context = self.context
        cached = self.cached
        context.store.touch(cached.path, cached.stat)
        representation, file_headers = headers.cached_file(cached.path, cached.stat)
        answer = decide("GET", self.request.headers, representation)
        body = self.data[answer.start : answer.end] if answer.send_body else b""
        response = self._headers(answer, file_headers)
        connection = self.request.connection
        assert connection is not None
        # Logged and counted before the bytes go: whoever got the answer
        # finds its access line and its count.
        context.metrics.request_done(
            Result.HIT, len(body), self.repository, self.request.request_time()
        )
        context.board.request_done(
            self.request, answer.status, Result.HIT, len(body), self.repository
        )
        context.demand.asked(self.repository, self.request.path, Result.HIT)
        result = context.small_files.note(cached.path, cached.stat) or Result.HIT
        log_access(self.request, answer.status, len(body), result)
        # In flight until the bytes left, so a graceful stop waits for a
        # slow reader of a small hit as for any other request.
        context.in_flight.started()
        start_line = ResponseStartLine("", answer.status, _REASONS[answer.status])
        sent = connection.write_headers(start_line, response, body)
        connection.finish()
        sent.add_done_callback(lambda _sent: context.in_flight.finished())

    @staticmethod
    def _headers(answer: Answer, file_headers: dict[str, str]) -> httputil.HTTPHeaders:
        response = httputil.HTTPHeaders()
        response["Server"] = headers.SERVER
        response["Date"] = headers.now_http_date()
        response["X-Package-Cache"] = Result.HIT
        if answer.status in (200, 206):
            response.update(file_headers)
        elif answer.status == 304:
            response["Etag"] = file_headers["Etag"]
            response["Last-Modified"] = file_headers["Last-Modified"]
        else:
            response["Content-Type"] = "text/plain"
        for name, value in answer.headers:
            response[name] = value
        return response


_REASONS = {status: httputil.responses[status] for status in (200, 206, 304, 412, 416)}


def _registry_file(
    context: ServingContext, rules: PathRules, key: CacheKey, request: HTTPServerRequest
) -> bool:
    """A registry path is a small hit only when its front calls it a file
    stored at that very path (documents are stored elsewhere and
    answered per variant; the stored variants are not paths of the API)."""
    target = context.fronts.resolve(
        rules.repository, RequestPath(key.segments, False), request.headers
    )
    return (
        isinstance(target, Target)
        and target.policy is Policy.IMMUTABLE
        and target.key == key
    )


def _stored_copy_answers(
    context: ServingContext, rules: PathRules, key: CacheKey, cached: CachedFile
) -> bool:
    """Does the request choice (``choice.choose``) answer the stored copy?"""
    volatile = rules.policy is Policy.VOLATILE
    situation = Situation(
        method="GET",
        policy=rules.policy,
        document=False,
        private=False,
        cached=True,
        validators=context.meta.read(key, cached.stat) if volatile else None,
        in_flight=False,
        known_missing=False,
    )
    now = context.clock.now()
    repository = rules.repository
    choice = choose(situation, repository.freshness, repository.mode, now)
    return choice.action is Action.SERVE_STORED
