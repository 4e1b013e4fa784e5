"""The request handler: it carries out what ``choice.py`` decides.

A request's way: ``routing.route`` (the path, its repository and policy,
its registry target; refused: 400/404/414), then the facts of its target
(a stored copy and its validators, a download in flight, a remembered
404) go to ``choice.choose``, which names one action. The handler carries
it out: the stored copy, a download to follow (joined, started, a
revalidation, a pass-through), a HEAD asked upstream, or an error. Once a
download ended before this client had a byte, ``choice.conclude`` says
what it gets instead. Every answer with a body ends in ``_respond``: the
pure decision (``decisions.decide``: 200, 206, 304, 412, 416, HEAD) sets
status and headers, and a body source (``bodies.py``) drains into the
client's ``ClientOutput``. Errors before the body are a plain-text status
(``HTTPError``); once a body has started, a failure cuts the connection,
so clients see an error instead of a short file.

Registry documents differ from files only in two things: a client waits
for the whole (rewritten) document rather than following its bytes, and
its body is finished per client (``_document_body``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

from tornado.web import HTTPError, stream_request_body

from pkgcache.fetching.download import Download, FetchPlan
from pkgcache.fetching.upstream import Outcome, ResponseHead
from pkgcache.observe.accesslog import escape
from pkgcache.observe.results import Result
from pkgcache.registries.targets import Redirect, Refusal, Target
from pkgcache.repositories.freshness import Freshness
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.serving import headers
from pkgcache.serving.bodies import Body, FileBody, GrowingBody, MemoryBody
from pkgcache.serving.choice import (
    Action,
    Choice,
    Ended,
    Ending,
    Situation,
    choose,
    conclude,
)
from pkgcache.serving.clients import allowed
from pkgcache.serving.context import ServingContext
from pkgcache.serving.decisions import Representation, decide
from pkgcache.serving.output import ClientOutput
from pkgcache.serving.pages import PageHandler
from pkgcache.serving.routing import Routed, route
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.meta import Validators
from pkgcache.store.smallfiles import SmallFiles

log = logging.getLogger("pkgcache.handler")


@stream_request_body
class CacheHandler(PageHandler):
    """Serves one request for one path; see the module docstring."""

    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, context: ServingContext) -> None:  # type: ignore[override]
        self.context = context
        self.result = Result.ERROR
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
            self.result = Result.FORBIDDEN
            client = escape(self.request.remote_ip or "-")
            log.warning("refused client %s: not in allow", client)
            raise HTTPError(403, "client not allowed")

    def on_finish(self) -> None:
        if self._counted:
            self._counted = False
            self.context.in_flight.finished()

    def on_connection_close(self) -> None:
        # tornado's own ends a request body still streaming in: without it
        # a client that leaves mid-body leaves this handler waiting.
        super().on_connection_close()
        self.output.closed = True
        if self._growing is not None:
            self._growing.client_left()
        if self._counted:
            self._counted = False
            self.context.in_flight.finished()

    async def get(self, _path: str) -> None:
        await self._serve()

    async def head(self, _path: str) -> None:
        await self._serve()

    async def _serve(self) -> None:
        target = self._target_of_request()
        if target is None:
            return
        download = None if target.private else self.context.downloads.get(target.key)
        cached = self._lookup_for(target)
        choice = self._choose(target, cached, download)
        self.result = choice.result
        await self._carry_out(choice, target, cached, download)

    def _lookup_for(self, target: Target) -> CachedFile | None:
        """The stored copy, where one may serve this request."""
        if target.private or self._rules.policy is Policy.PASS:
            return None
        return self._lookup()

    def _choose(
        self, target: Target, cached: CachedFile | None, download: Download | None
    ) -> Choice:
        settings = self._rules.repository.settings
        situation = Situation(
            method=self.request.method or "GET",
            policy=self._rules.policy,
            document=target.document is not None,
            private=target.private,
            cached=cached is not None,
            validators=self._validators_of(cached),
            in_flight=download is not None,
            known_missing=self.context.downloads.known_missing(target.key),
        )
        return choose(
            situation,
            Freshness.of(settings),
            NetworkMode.of(settings),
            self.context.clock.now(),
        )

    async def _carry_out(
        self,
        choice: Choice,
        target: Target,
        cached: CachedFile | None,
        download: Download | None,
    ) -> None:
        key = target.key
        action = choice.action
        if action is Action.REFUSE_OFFLINE:
            raise HTTPError(504, "%s is not cached and the repository is offline", key)
        if action is Action.ANSWER_NEGATIVE:
            raise HTTPError(404, "no source had %s a moment ago", key)
        if action is Action.SERVE_STORED:
            assert cached is not None
            await self._serve_stored(cached)
        elif action is Action.ASK_HEAD:
            await self._ask_head()
        elif action is Action.PASS_THROUGH:
            await self._follow(self._pass_through(), passing=True)
        elif action is Action.JOIN:
            assert download is not None
            stale = cached if self._rules.policy is Policy.VOLATILE else None
            await self._follow(download, stale=stale)
        else:
            revalidating = self._validators_of(cached) if cached else None
            if action is Action.REVALIDATE and revalidating is None:
                revalidating = Validators(None, None, None, 0.0)
            started = self.context.downloads.start(key, self._plan(revalidating))
            await self._follow(started, stale=cached)

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
            self.result = Result.REDIRECT
            self.redirect(answer.location, permanent=True)
            return None
        if isinstance(answer, Refusal):
            self.result = Result.REFUSED
            raise HTTPError(answer.status, "%s", answer.reason)
        assert isinstance(routed, Routed)
        self._rules: PathRules = routed.rules
        self._target = answer
        return answer

    def _validators_of(self, cached: CachedFile | None) -> Validators | None:
        """The stored copy's validators, when recorded for that very file."""
        if cached is None:
            return None
        return self.context.meta.read(self._target.key, cached.stat)

    def _plan(self, revalidating: Validators | None) -> FetchPlan:
        """How this request's target is fetched and kept. Digests an index
        named apply to immutable files only: a volatile file (an index
        itself) changes, and a digest learnt for it would pin it."""
        rules = self._rules
        target = self._target
        document = target.document
        immutable = rules.policy is Policy.IMMUTABLE
        return FetchPlan(
            route=target.route,
            request_headers=document.request_headers if document else (),
            rewrite=document.rewrite if document else None,
            expected=self.context.digests.get(target.key) if immutable else (),
            revalidating=revalidating,
            record_validators=rules.policy is Policy.VOLATILE,
            keep=rules.policy is not Policy.PASS and not target.private,
            repository=rules.repository.name,
            negative_for=rules.repository.settings.negative_for,
        )

    def _lookup(self) -> CachedFile | None:
        try:
            return self.context.store.lookup(self._target.key)
        except OutsideCache as outside:
            self.result = Result.REFUSED
            raise HTTPError(404, "%s", outside) from None
        except PathConflict as conflict:
            self.result = Result.REFUSED
            raise HTTPError(409, "%s", conflict) from None

    async def _serve_stored(self, cached: CachedFile) -> None:
        """A complete stored copy: a hit, or what a download left."""
        self.context.store.touch(cached.path, cached.stat)
        if self._target.document is not None:
            await self._serve_document(cached)
            return
        representation, file_headers = headers.cached_file(cached.path, cached.stat)
        recorded = self._validators_of(cached)
        if recorded is not None and recorded.verified:
            self.verified = recorded.verified.split(":", 1)[0]
        await self._respond(representation, file_headers, self._body_of(cached))

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
            self.result = Result.REFUSED
            raise HTTPError(404, "%s", outside) from None
        except OSError as error:
            raise HTTPError(503, "%s changed while read", cached.path) from error

    async def _follow(
        self,
        download: Download,
        passing: bool = False,
        stale: CachedFile | None = None,
    ) -> None:
        """Serve ``download``: its bytes as they come (a file) or its whole
        body once it ended (a document). ``passing``: it is this client's
        own pass-through, never replaced by another; ``stale``: the stored
        copy it may replace, served if no answer comes within
        ``stall_timeout``."""
        document = self._target.document is not None
        wait = None
        if stale is not None and self._may_serve_stale(stale):
            wait = self.context.live.current.stall_timeout
        if document:
            arrived = await download.wait_for_end(wait)
        else:
            arrived = await download.wait_for_head(wait)
        if not arrived:
            assert stale is not None
            self.result = Result.STALE
            await self._serve_stored(stale)
            return
        if download.ended:
            await self._serve_ended(download, passing, stale)
            return
        assert download.head is not None
        if self.request.method == "HEAD":
            representation, file_headers = self._from_head(download.head)
            await self._respond(representation, file_headers, None)
            return
        if not download.has_partial and download.delivered and not passing:
            # Nothing to follow: bytes already went by and were not stored.
            await self._follow(self._pass_through(), passing=True)
            return
        await self._stream(download, stale)

    async def _stream(self, download: Download, stale: CachedFile | None) -> None:
        """Follow a download's bytes as they arrive."""
        assert download.head is not None
        if stale is not None:
            self.result = Result.REFRESHED
        representation, file_headers = self._from_head(download.head)
        bound = self.context.live.current.client_buffer
        self._growing = GrowingBody(download, bound)
        joined = self.context.metrics.joined_clients
        counted = self.result is Result.JOINED
        if counted:
            joined.inc()
        try:
            # Without a partial file, a reader can only take the bytes from
            # where the download is now: no byte ranges then.
            ranges = download.has_partial
            await self._respond(representation, file_headers, self._growing, ranges)
        finally:
            if counted:
                joined.dec()
            if download.verified is not None:
                self.verified = download.verified.algorithm

    async def _serve_ended(
        self, download: Download, passing: bool, stale: CachedFile | None
    ) -> None:
        """The download ended before this client had a byte: what it left
        (``choice.conclude``)."""
        result = download.result
        assert result is not None
        stored = None
        if download.not_modified or download.published:
            stored = self._lookup()
        kept = download.kept_body() if download.head is not None else None
        ending = conclude(
            Ended(
                outcome=result.outcome,
                stored=stored is not None,
                kept=kept is not None,
                stale_allowed=stale is not None and self._may_serve_stale(stale),
                passing=passing,
                document=self._target.document is not None,
            )
        )
        if ending is Ending.SERVE_STORED:
            assert stored is not None
            if download.not_modified:
                self.result = Result.REVALIDATED
            elif stale is not None and self._target.document is None:
                self.result = Result.REFRESHED
            await self._serve_stored(stored)
        elif ending is Ending.SERVE_KEPT:
            assert kept is not None and download.head is not None
            await self._serve_kept(kept, download.head)
        elif ending is Ending.SERVE_STALE:
            assert stale is not None
            log.warning("serving a stale %s: %s", self._target.key, result.detail)
            self.result = Result.STALE
            await self._serve_stored(stale)
        elif ending is Ending.PASS_THROUGH:
            await self._follow(self._pass_through(), passing=True)
        else:
            status = result.client_status
            raise HTTPError(502 if status == 200 else status, "%s", result.detail)

    async def _serve_kept(self, kept: bytes, head: ResponseHead) -> None:
        """A body the cache could not store, kept in memory whole."""
        if self._target.document is not None:
            upstream_type = head.headers.get("Content-Type")
            now = self.context.clock.now()
            await self._serve_document_bytes(kept, now, upstream_type)
            return
        representation, file_headers = headers.download_file(
            self._target.key.relative, len(kept), head.last_modified
        )
        await self._respond(representation, file_headers, MemoryBody(kept))

    def _may_serve_stale(self, stale: CachedFile) -> bool:
        freshness = Freshness.of(self._rules.repository.settings)
        now = self.context.clock.now()
        return freshness.may_serve_stale(self._validators_of(stale), now)

    def _pass_through(self) -> Download:
        """A download for this client alone, never registered or stored."""
        key = self._target.key
        if not self._target.private:
            log.info("%s was not stored: fetching it again for this client", key)
        return self.context.downloads.pass_through(key, self._plan(None))

    def _from_head(self, head: ResponseHead) -> tuple[Representation, dict[str, str]]:
        """A file not on disk yet, described by the upstream's response
        head (and typed by it, for a passed-through registry page)."""
        found = headers.download_file(
            self._target.key.relative, head.content_length, head.last_modified
        )
        if self._target.upstream_type:
            found[1]["Content-Type"] = head.headers.get(
                "Content-Type", "application/octet-stream"
            )
        return found

    async def _serve_document(self, cached: CachedFile) -> None:
        """A stored document: sent from the file as it is (a PyPI page,
        rewritten when stored), or read and finished for this client (an
        npm document)."""
        document = self._target.document
        assert document is not None
        result = cached.stat
        identity = (cached.path, result.st_ino, result.st_size, result.st_mtime_ns)
        store = self.context.store
        if document.learn is not None:
            document.learn(lambda: store.read_verified(cached), identity)
        validators = self._validators_of(cached)
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
        await self._serve_document_bytes(data, result.st_mtime, upstream_type, identity)

    async def _serve_document_bytes(
        self,
        data: bytes,
        mtime: float,
        upstream_type: str | None,
        identity: object | None = None,
    ) -> None:
        """Answer a document's bytes, finished for this client (npm's
        tarball URLs), typed by its variant, with ``Vary: Accept`` and an
        ETag of its own per variant."""
        document = self._target.document
        assert document is not None
        if document.finish is not None:
            data = await document.finish(data, identity)
        representation, answer_headers = headers.document(
            len(data), mtime, document.variant, document.content_type(upstream_type)
        )
        await self._respond(representation, answer_headers, MemoryBody(data))

    async def _ask_head(self) -> None:
        """HEAD of an uncached file: ask the sources with HEAD, fetch nothing."""
        target = self._target
        result = await self.context.upstream.fetch(
            target.key, "HEAD", lambda _head: True, None, target.route
        )
        if result.outcome is not Outcome.COMPLETE or result.head is None:
            raise HTTPError(result.client_status, "%s", result.detail)
        representation, file_headers = self._from_head(result.head)
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
