"""One file of a prefetch pass, fetched the way a client's request
would fetch it: routed (``serving/routing.route``), its situation put to
``serving/choice.choose``, what a miss waits for first awaited (cargo's
index file, Maven's sidecars), and a download started with the plan a
client's miss gets (``serving/planning.plan_for``) in the same
``Downloads``, so a client asking meanwhile joins it and it is checked
like any miss. At low priority: a download starts only while a curl
handle is free, so a client's miss never queues behind a prefetch; and a
prefetched file is counted against its pass's budget and the disk
bounds before it starts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.locks import Condition

from pkgcache.digests.values import Digest
from pkgcache.fetching.download import Download
from pkgcache.observe.demand import Demand
from pkgcache.observe.metrics import Metrics
from pkgcache.prefetch.finders import Wanted
from pkgcache.registries.fronts import DigestsUnavailable
from pkgcache.registries.targets import Target
from pkgcache.repositories.rules import PathRules
from pkgcache.serving.choice import Action, Choice, Situation, choose
from pkgcache.serving.context import ServingContext
from pkgcache.serving.planning import plan_for
from pkgcache.serving.routing import Routed, route
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.cull import free_bytes
from pkgcache.store.meta import Validators


@dataclass
class PassReport:
    """What one pass of one repository did (the status page, the log)."""

    repository: str
    started: float
    finished: float | None = None
    #: Files by outcome: fetched, present, joined, failed, refused.
    files: Counter[str] = field(default_factory=Counter)
    fetched_bytes: int = 0
    #: Why the pass stopped early (the budget, the disk), or None.
    stopped: str | None = None
    #: Indexes refreshed or found current.
    indexes: int = 0
    #: Bytes of the files being fetched now (their index sizes).
    reserved: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "started": self.started,
            "finished": self.finished,
            "files": dict(self.files),
            "bytes": self.fetched_bytes,
            "stopped": self.stopped,
            "indexes": self.indexes,
        }


@dataclass(frozen=True)
class _Fetch:
    """A download a pass is about to start: what ``choose`` said and what
    its plan needs."""

    path: str
    rules: PathRules
    target: Target
    validators: Validators | None
    action: Action
    #: Digests learnt before the download (Maven's sidecars).
    learnt: tuple[Digest, ...]


class PassStopped(Exception):
    """The pass must end here (budget or disk): ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PassFetcher:
    """Gets files for the passes (``get``); one per daemon."""

    def __init__(
        self,
        context: ServingContext,
        demand: Demand,
        metrics: Metrics,
        on_fetched: Callable[[str, str, str], None],
    ) -> None:
        """``on_fetched(repository, request path, store path)``: a pass
        fetched a file (the passes keep it from eviction for a while)."""
        self.context = context
        self.demand = demand
        self.metrics = metrics
        self.on_fetched = on_fetched
        self._room = Condition()
        context.downloads.on_end.append(self._download_ended)

    async def get(
        self,
        path: str,
        accept: str | None,
        budget: tuple[Wanted, PassReport] | None,
    ) -> tuple[str, Target | None]:
        """Make sure ``path`` is stored and current, as a GET for it would:
        ("present" | "fetched" | "joined" | "failed" | "refused", target).
        ``budget``: a prefetched file, counted against its pass."""
        context = self.context
        headers = HTTPHeaders(
            {"Host": "localhost", "User-Agent": "package-cache prefetch"}
        )
        if accept:
            headers["Accept"] = accept
        routed = route(
            context, HTTPServerRequest(method="GET", uri=path, headers=headers)
        )
        if not isinstance(routed, Routed) or not isinstance(routed.answer, Target):
            return "refused", None
        target, rules = routed.answer, routed.rules
        if target.private:
            return "refused", None
        facts = self._facts(target, rules)
        if facts is None:
            return "refused", None
        choice, download, cached, validators = facts
        if target.before is not None and cached is None and download is None:
            # What a client's miss waits for first (cargo: the index file
            # that vouches for a .crate), so a prefetch is checked the same.
            if await target.before() is not None:
                return "refused", target
            facts = self._facts(target, rules)
            if facts is None:
                return "refused", None
            choice, download, cached, validators = facts
        learnt: tuple[Digest, ...] = ()
        first = context.fronts.digests_first(rules, target.key)
        if choice.action is Action.START and first is not None:
            try:
                learnt = await first  # Maven's sidecars
            except DigestsUnavailable:
                return "failed", target
            facts = self._facts(target, rules)
            if facts is None:
                return "refused", None
            choice, download, cached, validators = facts
        if choice.action is Action.SERVE_STORED:
            return "present", target
        if choice.action is Action.JOIN and download is not None:
            await download.wait_for_end()
            return _joined(download), target
        if choice.action not in (Action.START, Action.REVALIDATE):
            return "refused", target
        if budget is not None:
            self._check_room(budget[0], budget[1])
            budget[1].reserved += budget[0].size or 0
        fetch = _Fetch(path, rules, target, validators, choice.action, learnt)
        try:
            return await self._download(fetch, budget)
        finally:
            if budget is not None:
                budget[1].reserved -= budget[0].size or 0

    async def _download(
        self, fetch: _Fetch, budget: tuple[Wanted, PassReport] | None
    ) -> tuple[str, Target | None]:
        context = self.context
        path, rules, target = fetch.path, fetch.rules, fetch.target
        await self._free_handle()
        if context.downloads.get(target.key) is not None:  # started meanwhile
            joined = context.downloads.get(target.key)
            assert joined is not None
            await joined.wait_for_end()
            return _joined(joined), target
        started = self._start(fetch)
        await started.wait_for_end()
        if started.not_modified:
            return "present", target  # an index the upstream confirmed
        if not started.published:
            return "failed", target
        if budget is not None:
            _wanted, report = budget
            report.fetched_bytes += started.received
            self.metrics.prefetch_bytes(rules.repository.name, started.received)
            self.demand.prefetched(rules.repository.name, path)
            final = context.store.final_path(target.key)
            self.on_fetched(rules.repository.name, path, final)
        return "fetched", target

    def _facts(
        self, target: Target, rules: PathRules
    ) -> tuple[Choice, Download | None, CachedFile | None, Validators | None] | None:
        """What ``choose`` says of ``target`` now, and the facts it was
        told; None when the path leads outside the cache."""
        context = self.context
        download = context.downloads.get(target.key)
        try:
            cached = context.store.lookup(target.key)
        except (OutsideCache, PathConflict):
            return None
        validators = context.meta.read(target.key, cached.stat) if cached else None
        choice = choose(
            Situation(
                method="GET",
                policy=rules.policy,
                document=target.document is not None,
                private=False,
                cached=cached is not None,
                validators=validators,
                in_flight=download is not None,
                known_missing=context.downloads.known_missing(target.key),
            ),
            rules.repository.freshness,
            rules.repository.mode,
            context.clock.now(),
        )
        return choice, download, cached, validators

    def _start(self, fetch: _Fetch) -> Download:
        revalidating = fetch.validators
        if fetch.action is Action.REVALIDATE and revalidating is None:
            revalidating = Validators(None, None, None, 0.0)
        if fetch.action is Action.START:
            revalidating = None
        plan = plan_for(
            fetch.rules, fetch.target, self.context.digests, revalidating, fetch.learnt
        )
        return self.context.downloads.start(fetch.target.key, plan)

    def _check_room(self, wanted: Wanted, report: PassReport) -> None:
        """Raise ``PassStopped`` when fetching ``wanted`` would cross the budget
        or a disk bound."""
        settings = self.context.live.current
        size = wanted.size or 0
        committed = report.fetched_bytes + report.reserved
        if committed + size > settings.prefetch_budget or (
            committed >= settings.prefetch_budget
        ):
            raise PassStopped("budget")
        usage = self.context.usage
        if settings.max_size and usage.bytes + size > settings.max_size:
            raise PassStopped("max_size")
        if settings.min_free:
            try:
                free = free_bytes(self.context.store.root)
            except OSError:
                free = 0
            if free - size < settings.min_free:
                raise PassStopped("min_free")

    async def _free_handle(self) -> None:
        """Wait until a download can start without waiting for a curl
        handle: a client's miss never queues behind a prefetch."""
        limit = self.context.live.current.upstream_connections
        while len(self.context.downloads) >= limit:
            await self._room.wait()

    def _download_ended(self, _download: Download) -> None:
        self._room.notify_all()


def _joined(download: Download) -> str:
    """The outcome of a download another request started."""
    return "joined" if download.published or download.not_modified else "failed"
