"""The request handler: it carries out what ``choice.py`` decides.

A request's way: ``routing.route`` (the path, its repository and policy,
its registry target; refused: 400/404/414), then the facts of its target
(a stored copy and its validators, a download in flight, a remembered
404) go to ``choice.choose``, which names one action. The handler carries
it out: the stored copy, a download to follow (joined, started, a
revalidation, a pass-through), a HEAD asked upstream, or an error. Once a
download ended before this client had a byte, ``choice.conclude`` says
what it gets instead. How each answer is then sent (a stored file or
document, a kept body, a download's head) is ``answers.py``'s. Errors
before the body are a plain-text status (``HTTPError``); once a body has
started, a failure cuts the connection, so clients see an error instead
of a short file.

Registry documents differ from files only in two things: a client waits
for the whole (rewritten) document rather than following its bytes, and
its body is finished per client (``answers.Answering._serve_document``).
"""

from __future__ import annotations

import logging

from tornado.web import HTTPError, stream_request_body

from pkgcache.digests.values import Digest
from pkgcache.fetching.download import Download
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.upstream import Outcome
from pkgcache.observe.accesslog import escape
from pkgcache.observe.results import Result
from pkgcache.registries import oci
from pkgcache.registries.fronts import DigestsUnavailable
from pkgcache.registries.targets import Redirect, Refusal, Reply, Target
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.serving.answers import Answering
from pkgcache.serving.bodies import GrowingBody
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
from pkgcache.serving.output import ClientOutput
from pkgcache.serving.pages import Explained, UpstreamFailure
from pkgcache.serving.planning import plan_for
from pkgcache.serving.routing import Routed, Unrouted, route
from pkgcache.store.cache import CachedFile
from pkgcache.store.meta import Validators

log = logging.getLogger("pkgcache.handler")


@stream_request_body
class CacheHandler(Answering):
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
        #: Digests learnt before the download (``_learn_digests``).
        self._first_digests: tuple[Digest, ...] = ()
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

    def error_document(self, status: int, line: str) -> str | None:
        """Errors under ``/v2/`` in the OCI shape, when a registry
        repository is configured (clients parse them)."""
        path = self.request.path
        if not path.startswith("/v2/") or not any(
            repo.settings.kind == "oci"
            for repo in self.context.repositories.repositories
        ):
            return None
        return oci.error_document(status, line, path)

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
        if target.before is not None and cached is None and download is None:
            refusal = await target.before()
            if refusal is not None:
                failed = refusal.status >= 500
                self.result = Result.ERROR if failed else Result.REFUSED
                raise HTTPError(refusal.status, "%s", refusal.reason)
            download = self.context.downloads.get(target.key)
            cached = self._lookup_for(target)
        choice = self._choose(target, cached, download)
        if choice.action is Action.START and await self._learn_digests(target):
            # Others may have started or stored it meanwhile: look again.
            download = self.context.downloads.get(target.key)
            cached = self._lookup_for(target)
            choice = self._choose(target, cached, download)
        self.result = choice.result
        await self._carry_out(choice, target, cached, download)

    async def _learn_digests(self, target: Target) -> bool:
        """Before a miss starts its download: the digests the file must
        match, where its kind learns them from files fetched first
        (``Fronts.digests_first``: Maven's sidecars). True when it awaited
        (the facts must be looked at again); 502 when they may exist but
        could not be fetched."""
        first = self.context.fronts.digests_first(self._rules, target.key)
        if first is None:
            return False
        try:
            self._first_digests = await first
        except DigestsUnavailable as error:
            raise UpstreamFailure(502, str(error), None) from None
        return True

    def _lookup_for(self, target: Target) -> CachedFile | None:
        """The stored copy, where one may serve this request."""
        if target.private or self._rules.policy is Policy.PASS:
            return None
        return self._lookup()

    def _choose(
        self, target: Target, cached: CachedFile | None, download: Download | None
    ) -> Choice:
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
            self._rules.repository.freshness,
            self._rules.repository.mode,
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
            if isinstance(answer, Unrouted):
                self._refuse_unrouted(answer)
            raise HTTPError(answer.status, "%s", answer.reason)
        if isinstance(answer, Reply):
            self.result = Result.STATUS
            self.set_status(answer.status)
            self.set_header("Content-Type", answer.content_type)
            self.finish_page(answer.body.decode())
            return None
        assert isinstance(routed, Routed)
        self._rules: PathRules = routed.rules
        self._target = answer
        return answer

    def _refuse_unrouted(self, answer: Unrouted) -> None:
        """A path under no prefix (a client pointed at the wrong URL): its
        404 names the configured prefixes, for clients that may read the
        status pages; others learn nothing of the configuration."""
        settings = self.context.live.current
        if allowed(self.request, settings.status_allow, settings.trusted_proxies):
            prefixes = ", ".join(
                repository.prefix for repository in settings.all_repositories
            )
            raise Explained(
                answer.status, f"{answer.reason}; the prefixes served: {prefixes}"
            )

    def _plan(self, revalidating: Validators | None) -> FetchPlan:
        """How this request's target is fetched and kept (with the digests
        learnt first, ``_learn_digests``)."""
        return plan_for(
            self._rules,
            self._target,
            self.context.digests,
            revalidating,
            self._first_digests,
        )

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
            raise UpstreamFailure(
                502 if status == 200 else status, result.detail, result.retry_after
            )

    def _may_serve_stale(self, stale: CachedFile) -> bool:
        freshness = self._rules.repository.freshness
        now = self.context.clock.now()
        return freshness.may_serve_stale(self._validators_of(stale), now)

    def _pass_through(self) -> Download:
        """A download for this client alone, never registered or stored."""
        key = self._target.key
        if not self._target.private:
            log.info("%s was not stored: fetching it again for this client", key)
        return self.context.downloads.pass_through(key, self._plan(None))

    async def _ask_head(self) -> None:
        """HEAD of an uncached file: ask the sources with HEAD, fetch nothing."""
        target = self._target
        result = await self.context.upstream.fetch(
            target.key, "HEAD", lambda _head: True, None, target.route
        )
        if result.outcome is not Outcome.COMPLETE or result.head is None:
            raise UpstreamFailure(
                result.client_status, result.detail, result.retry_after
            )
        representation, file_headers = self._from_head(result.head)
        await self._respond(representation, file_headers, None)
