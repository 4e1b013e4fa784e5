"""The request handler: which file, then a hit, a join or a miss.

A request's way: ``paths.cache_key`` (refused: 400/404/414), then the
rules that govern the path (``repositories``), then the registry (a
download in flight: join it), then the store (a complete file: a hit),
else a new download (a miss). Each of these ends in one place,
``_respond``: the pure decision (``decisions.decide``: 200, 206, 304, 412,
416, HEAD) sets status and headers, and a body source (``bodies.py``)
drains into the client's ``ClientOutput``. Errors before the body are a
plain-text status (``HTTPError``); once a body has started, a failure cuts
the connection, so clients see an error instead of a short file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from tornado.httputil import responses
from tornado.web import HTTPError, RequestHandler, stream_request_body

from pkgcache.fetching.download import Download, FetchPlan
from pkgcache.fetching.upstream import Outcome, ResponseHead
from pkgcache.observe.accesslog import escape
from pkgcache.registries.targets import Redirect, Refusal, Target
from pkgcache.repositories.freshness import may_serve_stale, serve_without_asking
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.serving import headers
from pkgcache.serving.bodies import Body, FileBody, GrowingBody, MemoryBody
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.decisions import Representation, decide
from pkgcache.serving.output import ClientOutput
from pkgcache.serving.routing import Routed, route
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.meta import Validators
from pkgcache.store.paths import CacheKey
from pkgcache.store.smallfiles import SmallFiles

log = logging.getLogger("pkgcache.handler")


class PageHandler(RequestHandler):
    """The base of our handlers: the ``Server`` header on every answer,
    errors as one plain-text line (never a traceback or HTML), no ETag of
    tornado's own, and the byte count of pages (``page_bytes``) for the
    access log."""

    page_bytes = 0

    def set_default_headers(self) -> None:
        self.set_header("Server", headers.SERVER)

    def compute_etag(self) -> str | None:
        """Files carry their own validators; pages and errors none."""
        return None

    def data_received(self, chunk: bytes) -> None:
        """A GET or HEAD body means nothing here: dropped as it streams in
        (``stream_request_body``), so memory stays bounded whatever a client
        sends."""

    def finish_page(self, text: str) -> None:
        """Finish with a small generated body, counting its bytes."""
        data = text.encode()
        if self.request.method != "HEAD":
            self.page_bytes += len(data)
        self.finish(data)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:
            # tornado closes the connection after a 405 without reading its
            # body: say so, or a client reuses the socket and fails.
            self.set_header("Allow", "GET, HEAD")
            self.set_header("Connection", "close")
        reason = getattr(error, "reason", None) or responses.get(status_code, "")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish_page(f"{status_code} {reason}\n")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """HTTP errors are in the access log already; log only real faults."""
        if not isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)

    @property
    def bytes_sent(self) -> int:
        """Body bytes of this answer that left, for the access log."""
        return self.page_bytes


@stream_request_body
class CacheHandler(PageHandler):
    """Serves one request for one path; see the module docstring."""

    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, context: ServingContext) -> None:  # type: ignore[override]
        self.context = context
        #: hit, miss, joined, refused, forbidden or error: for the access log.
        self.result = "error"
        #: The repository that serves the path, for the metrics.
        self.repository = "-"
        #: The algorithm of the digest the file matched, for the access log.
        self.verified: str | None = None
        self.output = ClientOutput(self, context.live.current.idle_timeout)
        self._growing: GrowingBody | None = None
        self._counted = False

    @property
    def bytes_sent(self) -> int:
        return self.output.sent + self.page_bytes

    @property
    def unclean(self) -> bool:
        return self.output.unclean

    def prepare(self) -> None:
        self.context.in_flight.started()
        self._counted = True
        settings = self.context.live.current
        if not allowed(self.request, settings.allow, settings.trusted_proxies):
            self.result = "forbidden"
            client = escape(self.request.remote_ip or "-")
            log.warning("refused client %s: not in allow", client)
            raise HTTPError(403, "client not allowed")

    def on_finish(self) -> None:
        if self._counted:
            self._counted = False
            self.context.in_flight.finished()

    def on_connection_close(self) -> None:
        self.output.closed = True
        if self._growing is not None:
            self._growing.client_left()

    async def get(self, _path: str) -> None:
        await self._serve(include_body=True)

    async def head(self, _path: str) -> None:
        await self._serve(include_body=False)

    async def _serve(self, include_body: bool) -> None:
        target = self._target_of_request()
        if target is None:
            return
        key = target.key
        rules = self._rules
        if target.document is not None and target.policy is Policy.VOLATILE:
            await self._serve_document(target)
            return
        if target.private:
            self.result = "pass"
            plan = self._plan(rules, None)
            download = self.context.downloads.pass_through(key, plan)
            await self._serve_download(key, download, passing=True)
            return
        download = self.context.downloads.get(key)
        if download is not None:
            self.result = "joined"
            volatile = rules.policy is Policy.VOLATILE
            stale = self._lookup(key) if volatile else None
            await self._serve_download(key, download, stale=stale)
            return
        cached = self._lookup(key) if rules.policy is not Policy.PASS else None
        settings = rules.repository.settings
        if cached is not None:
            if self._needs_revalidation(key, cached) and include_body:
                self.result = "refreshed"
                plan = self._plan(rules, self._validators(key, cached))
                download = self.context.downloads.start(key, plan)
                await self._serve_download(key, download, stale=cached)
                return
            self.result = "hit"
            await self._serve_file(cached)
            return
        if settings.offline:
            raise HTTPError(504, "%s is not cached and the repository is offline", key)
        if self.context.downloads.known_missing(key):
            self.result = "negative"
            raise HTTPError(404, "no source had %s a moment ago", key)
        if not include_body:
            await self._head_miss(key)
            return
        download = self.context.downloads.start(key, self._plan(rules, None))
        self.result = "pass" if rules.policy is Policy.PASS else "miss"
        await self._serve_download(key, download)

    def _target_of_request(self) -> Target | None:
        """Where the request goes (``routing.route``): sets ``self._rules``
        and returns its ``Target``; None when it was answered already (a
        redirect). Refusals raise ``HTTPError``."""
        routed = route(self.context, self.request)
        if isinstance(routed, Routed):
            self.repository = routed.rules.repository.name
            answer = routed.answer
        else:
            answer = routed
        if isinstance(answer, Redirect):
            self.result = "redirect"
            self.redirect(answer.location, permanent=True)
            return None
        if isinstance(answer, Refusal):
            self.result = "refused"
            raise HTTPError(answer.status, "%s", answer.reason)
        assert isinstance(routed, Routed)
        self._rules = routed.rules
        self._target = answer
        return answer

    def _needs_revalidation(self, key: CacheKey, cached: CachedFile) -> bool:
        rules = self._rules
        if rules.policy is not Policy.VOLATILE:
            return False
        validators = self.context.meta.read(key, cached.stat)
        settings = rules.repository.settings
        return not serve_without_asking(validators, settings, self.context.clock.now())

    def _validators(self, key: CacheKey, cached: CachedFile) -> Validators:
        """The stored copy's validators; none recorded: a plain request."""
        found = self.context.meta.read(key, cached.stat)
        return found or Validators(None, None, None, 0.0)

    def _plan(self, rules: PathRules, revalidating: Validators | None) -> FetchPlan:
        document = self._target.document
        return FetchPlan(
            route=self._target.route,
            request_headers=document.request_headers if document else (),
            rewrite=document.rewrite if document else None,
            expected=self.context.digests.get(self._target.key),
            revalidating=revalidating,
            record_validators=rules.policy is Policy.VOLATILE,
            keep=rules.policy is not Policy.PASS,
            repository=rules.repository.name,
            negative_for=rules.repository.settings.negative_for,
        )

    def _lookup(self, key: CacheKey) -> CachedFile | None:
        try:
            return self.context.store.lookup(key)
        except OutsideCache as outside:
            self.result = "refused"
            raise HTTPError(404, "%s", outside) from None
        except PathConflict as conflict:
            self.result = "refused"
            raise HTTPError(409, "%s", conflict) from None

    async def _serve_file(self, cached: CachedFile) -> None:
        """A complete file: a hit, or a download that ended meanwhile."""
        self.context.store.touch(cached.path, cached.stat)
        representation, file_headers = headers.cached_file(cached.path, cached.stat)
        recorded = self.context.meta.read(self._target.key, cached.stat)
        if recorded is not None and recorded.verified:
            self.verified = recorded.verified.split(":", 1)[0]
        body = self._body_of(cached)
        await self._respond(representation, file_headers, body)

    def _body_of(self, cached: CachedFile) -> Body:
        """A complete file's bytes: from memory when small (``SmallFiles``),
        else its descriptor, opened confined to the cache."""
        with self._reading(cached):
            if SmallFiles.fits(cached.stat):
                return MemoryBody(
                    self.context.small_files.read(
                        cached.path,
                        cached.stat,
                        lambda: self.context.store.open_verified(cached),
                    )
                )
            fd = self.context.store.open_verified(cached)
            return FileBody(fd, cached.stat.st_size, cached.path)

    @contextlib.contextmanager
    def _reading(self, cached: CachedFile) -> Iterator[None]:
        """Reading a looked-up file: a way out of the cache is 404, a file
        culled between the look-up and now is 503."""
        try:
            yield
        except OutsideCache as outside:
            self.result = "refused"
            raise HTTPError(404, "%s", outside) from None
        except OSError as error:
            raise HTTPError(503, "%s changed while read", cached.path) from error

    async def _serve_download(
        self,
        key: CacheKey,
        download: Download,
        passing: bool = False,
        stale: CachedFile | None = None,
    ) -> None:
        """Join ``download``; ``passing``: it is this client's own
        pass-through, not to be replaced by another; ``stale``: a cached
        copy it may replace (a revalidation), served if no answer comes
        within ``stall_timeout``."""
        if stale is not None and self._may_serve_stale(key, stale):
            wait = self.context.live.current.stall_timeout
            if not await download.wait_for_head(wait):
                self.result = "stale"
                await self._serve_file(stale)
                return
        else:
            await download.wait_for_head()
        if download.not_modified or (stale is not None and download.ended):
            await self._serve_revalidated(key, download, stale)
            return
        if self.request.method == "HEAD" and download.head is not None:
            representation, file_headers = self._from_head(key, download.head)
            await self._respond(representation, file_headers, None)
            return
        if download.ended:
            await self._serve_ended(key, download, passing)
            return
        if not download.has_partial and download.delivered and not passing:
            # Nothing to follow: bytes already went by and were not stored.
            await self._serve_download(key, self._pass_through(key), True)
            return
        if stale is not None:
            self.result = "refreshed"
        assert download.head is not None
        representation, file_headers = self._from_head(key, download.head)
        bound = self.context.live.current.client_buffer
        self._growing = GrowingBody(download, bound)
        joined = self.context.metrics.joined_clients
        if self.result == "joined":
            joined.inc()
        try:
            # Without a partial file, a reader can only take the bytes from
            # where the download is now: no byte ranges then.
            ranges = download.has_partial
            await self._respond(representation, file_headers, self._growing, ranges)
        finally:
            if self.result == "joined":
                joined.dec()
            if download.verified is not None:
                self.verified = download.verified.algorithm

    async def _serve_revalidated(
        self, key: CacheKey, download: Download, stale: CachedFile | None
    ) -> None:
        """A revalidation ended before this client saw a byte: the copy was
        current (304), a new version was stored, the file is gone upstream,
        or no source answered (the stale copy, within ``stale_if_error``)."""
        result = download.result
        assert result is not None
        if download.not_modified or download.published:
            cached = self._lookup(key)
            if cached is not None:
                self.result = "revalidated" if download.not_modified else "refreshed"
                await self._serve_file(cached)
                return
        failed = result.outcome in (Outcome.FAILED, Outcome.TIMEOUT)
        if stale is not None and failed and self._may_serve_stale(key, stale):
            log.warning("serving a stale %s: %s", key, result.detail)
            self.result = "stale"
            await self._serve_file(stale)
            return
        await self._serve_ended(key, download, passing=False)

    def _may_serve_stale(self, key: CacheKey, stale: CachedFile) -> bool:
        validators = self.context.meta.read(key, stale.stat)
        settings = self._rules.repository.settings
        return may_serve_stale(validators, settings, self.context.clock.now())

    async def _serve_ended(
        self, key: CacheKey, download: Download, passing: bool
    ) -> None:
        """The download ended before this client saw a byte: serve what it
        left (the stored file, the body kept in memory, or a pass-through
        of its own when the cache could not take it), or its error."""
        cached = self._lookup(key) if download.published else None
        if cached is not None:
            await self._serve_file(cached)
            return
        kept = download.kept_body()
        if kept is not None and download.head is not None:
            representation, file_headers = headers.download_file(
                key.relative, len(kept), download.head.last_modified
            )
            await self._respond(representation, file_headers, MemoryBody(kept))
            return
        assert download.result is not None
        if download.result.outcome is Outcome.COMPLETE and not passing:
            await self._serve_download(key, self._pass_through(key), True)
            return
        status = download.result.client_status
        raise HTTPError(502 if status == 200 else status, "%s", download.result.detail)

    def _pass_through(self, key: CacheKey) -> Download:
        log.info("%s was not stored: fetching it again for this client", key)
        return self.context.downloads.pass_through(key, self._plan(self._rules, None))

    def _from_head(
        self, key: CacheKey, head: ResponseHead
    ) -> tuple[Representation, dict[str, str]]:
        """A file not on disk yet, described by the upstream's response
        head (and typed by it, for a passed-through registry page)."""
        found = headers.download_file(
            key.relative, head.content_length, head.last_modified
        )
        if self._target.upstream_type:
            found[1]["Content-Type"] = head.headers.get(
                "Content-Type", "application/octet-stream"
            )
        return found

    async def _serve_document(self, target: Target) -> None:
        """A registry document: a hit while fresh, else one upstream
        request that every client of it waits for whole (its page is
        rewritten before it is stored), then the stored copy; the stale
        copy when no answer comes in ``stall_timeout`` or every source
        fails (within ``stale_if_error``)."""
        key = target.key
        rules = self._rules
        download = self.context.downloads.get(key)
        cached = self._lookup(key)
        if download is None:
            if cached is not None and not self._needs_revalidation(key, cached):
                self.result = "hit"
                await self._send_document(target, cached)
                return
            if cached is None and rules.repository.settings.offline:
                raise HTTPError(
                    504, "%s is not cached and the repository is offline", key
                )
            if cached is None and self.context.downloads.known_missing(key):
                self.result = "negative"
                raise HTTPError(404, "no source had %s a moment ago", key)
            validators = self._validators(key, cached) if cached else None
            download = self.context.downloads.start(key, self._plan(rules, validators))
            self.result = "refreshed" if cached else "miss"
        else:
            self.result = "joined"
        may_be_stale = cached is not None and self._may_serve_stale(key, cached)
        wait = self.context.live.current.stall_timeout if may_be_stale else None
        if not await download.wait_for_end(wait):
            assert cached is not None
            self.result = "stale"
            await self._send_document(target, cached)
            return
        if download.not_modified or download.published:
            current = self._lookup(key)
            if current is not None:
                if download.not_modified:
                    self.result = "revalidated"
                await self._send_document(target, current)
                return
        kept = download.kept_body()
        if kept is not None and download.head is not None:
            upstream_type = download.head.headers.get("Content-Type")
            await self._send_document_bytes(
                target, kept, self.context.clock.now(), upstream_type
            )
            return
        result = download.result
        assert result is not None
        failed = result.outcome in (Outcome.FAILED, Outcome.TIMEOUT)
        if cached is not None and failed and self._may_serve_stale(key, cached):
            log.warning("serving a stale %s: %s", key, result.detail)
            self.result = "stale"
            await self._send_document(target, cached)
            return
        status = result.client_status
        raise HTTPError(502 if status == 200 else status, "%s", result.detail)

    async def _send_document(self, target: Target, cached: CachedFile) -> None:
        """A stored document: sent from the file as it is (a PyPI page,
        rewritten when stored), or read and finished for this client (an
        npm document)."""
        document = target.document
        assert document is not None
        self.context.store.touch(cached.path, cached.stat)
        result = cached.stat
        identity = (cached.path, result.st_ino, result.st_size, result.st_mtime_ns)
        store = self.context.store
        if document.learn is not None:
            document.learn(lambda: store.read_verified(cached), identity)
        validators = self.context.meta.read(target.key, cached.stat)
        upstream_type = validators.content_type if validators else None
        if document.finish is None:
            representation, answer_headers = headers.document(
                result.st_size,
                result.st_mtime,
                document.variant,
                document.content_type(upstream_type),
            )
            await self._respond(representation, answer_headers, self._body_of(cached))
            return
        with self._reading(cached):
            data = store.read_verified(cached)
        await self._send_document_bytes(
            target, data, result.st_mtime, upstream_type, identity
        )

    async def _send_document_bytes(
        self,
        target: Target,
        data: bytes,
        mtime: float,
        upstream_type: str | None,
        identity: object | None = None,
    ) -> None:
        """Answer a document's bytes, finished for this client (npm's
        tarball URLs), typed by its variant, with ``Vary: Accept`` and an
        ETag of its own per variant."""
        document = target.document
        assert document is not None
        if document.finish is not None:
            data = await document.finish(data, identity)
        representation, answer_headers = headers.document(
            len(data), mtime, document.variant, document.content_type(upstream_type)
        )
        await self._respond(representation, answer_headers, MemoryBody(data))

    async def _head_miss(self, key: CacheKey) -> None:
        """HEAD of an uncached file: ask the sources with HEAD, fetch nothing."""
        self.result = "miss"
        result = await self.context.upstream.fetch(
            key, "HEAD", lambda _head: True, None, self._target.route
        )
        if result.outcome is not Outcome.COMPLETE or result.head is None:
            raise HTTPError(result.client_status, "%s", result.detail)
        representation, file_headers = self._from_head(key, result.head)
        await self._respond(representation, file_headers, None)

    async def _respond(
        self,
        representation: Representation,
        file_headers: dict[str, str],
        body: Body | None,
        ranges: bool = True,
    ) -> None:
        """Decide, set status and headers, then drain the body (if any)."""
        request_headers: Mapping[str, str] = self.request.headers
        if not ranges:
            request_headers = {
                name: value
                for name, value in self.request.headers.items()
                if name not in ("Range", "If-Range")
            }
        answer = decide(self.request.method or "GET", request_headers, representation)
        self.set_status(answer.status)
        self.set_header("X-Package-Cache", self.result)
        if answer.status in (200, 206, 304):
            for name, value in file_headers.items():
                self.set_header(name, value)
        if answer.status >= 400:
            self.set_header("Content-Type", "text/plain")
        for name, value in answer.headers:
            self.set_header(name, value)
        try:
            if body is None or not answer.send_body:
                return
            complete = await body.send(self.output, answer.start, answer.end)
            if not complete and not self.output.closed:
                self.output.cut()
        finally:
            if body is not None:
                body.close()
