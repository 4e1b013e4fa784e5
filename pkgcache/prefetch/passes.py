"""Prefetch passes: every ``prefetch`` interval, per repository, refresh
the indexes clients used, find newer versions of what they downloaded
(``finders.py``), and fetch those files before anyone asks.

A pass goes the way a client's request goes: each path is routed
(``serving/routing.route``), its situation put to ``serving/choice.choose``,
and a download started with the same plan (``serving/planning.plan_for``)
in the same ``Downloads``: one download per file, which any client that
asks meanwhile joins, checked against the index digests like any miss, and
an index refreshed with the same conditional request a client's
revalidation makes (and coalesced with it).

At low priority: a pass runs at most a quarter of ``upstream_connections``
downloads at once and starts one only while a curl handle is free, so a
client's miss never waits in a queue behind a prefetch. A pass stops at
its repository's ``prefetch_budget`` of bytes and before it would cross
``max_size`` or ``min_free``; what it fetched is protected from eviction
for one interval, so a client has the chance to use it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.locks import Condition

from pkgcache.digests.values import Digest
from pkgcache.fetching.download import Download
from pkgcache.observe.demand import Demand
from pkgcache.observe.metrics import Metrics
from pkgcache.prefetch.alpine import AlpineFinder
from pkgcache.prefetch.arch import ArchFinder
from pkgcache.prefetch.cargo import CargoFinder
from pkgcache.prefetch.debian import DebianFinder
from pkgcache.prefetch.finders import Finder, IndexRead, Wanted
from pkgcache.prefetch.golang import GoFinder
from pkgcache.prefetch.maven import MavenFinder
from pkgcache.prefetch.npm import NpmFinder
from pkgcache.prefetch.oci import OciFinder
from pkgcache.prefetch.pypi import PypiFinder
from pkgcache.prefetch.rpm import RpmFinder
from pkgcache.registries.fronts import DigestsUnavailable
from pkgcache.registries.targets import Target
from pkgcache.repositories.rules import PathRules
from pkgcache.serving.choice import Action, Choice, Situation, choose
from pkgcache.serving.context import ServingContext
from pkgcache.serving.planning import plan_for
from pkgcache.serving.routing import Routed, route
from pkgcache.settings import RepositorySettings, Settings
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.cull import free_bytes
from pkgcache.store.meta import Validators

log = logging.getLogger("pkgcache.prefetch")

#: Each kind that prefetches, and how its finder is made from a prefix.
FINDERS: dict[str, Callable[[str], Finder]] = {
    "debian": DebianFinder,
    "arch": ArchFinder,
    "rpm": RpmFinder,
    "alpine": AlpineFinder,
    "pypi": PypiFinder,
    "npm": NpmFinder,
    "go": GoFinder,
    "cargo": CargoFinder,
    "maven": MavenFinder,
    "oci": OciFinder,
}

#: Rounds of ``more_indexes`` a pass asks at most: each names indexes the
#: ones read so far point at (oci: an old manifest, then its config, then
#: the new index's entry for that platform); a round naming none already
#: tried ends them.
MORE_ROUNDS = 3


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


class _Stop(Exception):
    """The pass must end here (budget or disk): ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Prefetcher:
    """Schedules and runs the passes of every repository that has one."""

    def __init__(
        self, context: ServingContext, demand: Demand, metrics: Metrics
    ) -> None:
        self.context = context
        self.demand = demand
        self.metrics = metrics
        self.last: dict[str, PassReport] = {}
        self._timers: dict[str, PeriodicCallback] = {}
        self._running: dict[str, asyncio.Task[PassReport]] = {}
        #: Store paths a pass fetched, with when: kept from eviction for
        #: one interval unless a client used them.
        self._fresh: dict[str, tuple[str, str, float]] = {}
        self._room = Condition()
        context.downloads.on_end.append(self._download_ended)
        demand.on_used.append(self._used)
        context.live.on_change(lambda _old, new: self._schedule(new))

    # Scheduling -----------------------------------------------------------

    def start(self) -> None:
        """Load the demand files and schedule the passes; the first pass of
        a repository runs one interval after start."""
        settings = self.context.live.current
        self.demand.load([repo.name for repo in settings.all_repositories])
        self._schedule(settings)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.stop()
        self._timers.clear()
        for task in self._running.values():
            task.cancel()
        self.save()

    def save(self) -> None:
        """Write what changed of the demand memory (in a thread)."""
        snapshot = self.demand.snapshot()
        if snapshot:
            self.demand.save(snapshot)

    def interval(self, settings: Settings, repository: RepositorySettings) -> float:
        if repository.kind not in FINDERS:
            return 0.0
        return settings.prefetch_interval(repository)

    def _schedule(self, settings: Settings) -> None:
        wanted = {
            repo.name: seconds
            for repo in settings.all_repositories
            if (seconds := self.interval(settings, repo)) > 0
        }
        for name in list(self._timers):
            timer = self._timers[name]
            if wanted.get(name) != timer.callback_time / 1000:
                timer.stop()
                del self._timers[name]
        for name, seconds in wanted.items():
            if name not in self._timers:
                timer = PeriodicCallback(
                    functools.partial(self._tick, name), seconds * 1000
                )
                timer.start()
                self._timers[name] = timer

    @property
    def running(self) -> list[str]:
        """The repositories a pass runs for now."""
        return list(self._running)

    def _tick(self, name: str) -> None:
        self.trigger(name)

    def trigger(self, name: str) -> bool:
        """Start a pass of repository ``name`` now, unless one runs; False
        when no repository of that name can prefetch."""
        repository = self._repository(name)
        if repository is None or repository.kind not in FINDERS:
            return False
        if name not in self._running:
            task = asyncio.ensure_future(self.run(name))
            self._running[name] = task
            task.add_done_callback(lambda _task: self._running.pop(name, None))
        return True

    def protected(self) -> frozenset[str]:
        """Store paths eviction must leave: fetched by a pass less than one
        interval ago and not used by a client yet."""
        now = self.context.clock.now()
        settings = self.context.live.current
        kept = []
        for path, (repository, _request, when) in list(self._fresh.items()):
            repo = self._repository(repository)
            interval = self.interval(settings, repo) if repo else 0.0
            if now - when < interval:
                kept.append(path)
            else:
                del self._fresh[path]
        return frozenset(kept)

    # A pass -----------------------------------------------------------------

    async def run(self, name: str) -> PassReport:
        """One pass of repository ``name``; its report is kept as ``last``."""
        context = self.context
        settings = context.live.current
        repository = self._repository(name)
        report = PassReport(name, context.clock.now())
        if repository is None or repository.kind not in FINDERS:
            return report
        finder = FINDERS[repository.kind](repository.prefix)
        recent = list(self.demand.recent(name, settings.prefetch_unused_after))
        began = time.monotonic()
        try:
            first = finder.indexes(recent)
            bodies = await self._refresh(first, report)
            tried = set(first)
            for _round in range(MORE_ROUNDS):
                more = await IOLoop.current().run_in_executor(
                    None, finder.more_indexes, recent, dict(bodies)
                )
                more = [index for index in more if index not in tried]
                if not more:
                    break
                tried.update(more)
                bodies.update(await self._refresh(more, report))
            wanted = await IOLoop.current().run_in_executor(
                None, finder.wanted, recent, bodies, settings.prefetch_versions
            )
            await self._fetch_all(repository, wanted, report)
        except _Stop as stop:
            report.stopped = stop.reason
        except Exception:
            log.exception("prefetch %s: the pass failed", name)
            report.stopped = "error"
        report.finished = context.clock.now()
        self.last[name] = report
        files = report.files
        log.info(
            "prefetch %s: %d fetched (%d bytes), %d present, %d joined, %d failed,"
            " %d indexes, in %.1f s%s",
            name,
            files["fetched"],
            report.fetched_bytes,
            files["present"],
            files["joined"],
            files["failed"],
            report.indexes,
            time.monotonic() - began,
            f"; stopped: {report.stopped}" if report.stopped else "",
        )
        if report.stopped:
            self.metrics.prefetch_stopped(name, report.stopped)
        await IOLoop.current().run_in_executor(
            None, self.demand.save, self.demand.snapshot()
        )
        return report

    async def _refresh(
        self, indexes: list[IndexRead], report: PassReport
    ) -> dict[IndexRead, bytes]:
        """Refresh each index as a client's request would, then read it."""
        bodies: dict[IndexRead, bytes] = {}
        for index in indexes:
            outcome, target = await self._get(index.path, index.accept, None)
            if target is None or outcome in ("failed", "refused"):
                continue
            report.indexes += 1
            body = await IOLoop.current().run_in_executor(
                None, self.context.store.read_stored, target.key
            )
            if body is not None:
                bodies[index] = body
        return bodies

    async def _fetch_all(
        self, repository: RepositorySettings, wanted: list[Wanted], report: PassReport
    ) -> None:
        """Fetch ``wanted`` within the budget. Files whose size the index
        gives run together (a quarter of ``upstream_connections`` at most),
        each reserving its size first; the others after, one at a time and
        only while the pass is under budget, so a pass overshoots its
        budget by one such file at most."""
        settings = self.context.live.current
        at_once = asyncio.Semaphore(max(1, settings.upstream_connections // 4))
        stop: list[str] = []

        async def one(item: Wanted) -> None:
            async with at_once:
                if stop:
                    return
                try:
                    outcome, _target = await self._get(item.path, None, (item, report))
                except _Stop as reason:
                    stop.append(reason.reason)
                    return
                report.files[outcome] += 1
                self.metrics.prefetch_file(repository.name, outcome)

        known = [item for item in wanted if item.size is not None]
        await asyncio.gather(*(one(item) for item in known))
        for item in wanted:
            if item.size is None and not stop:
                await one(item)
        if stop:
            raise _Stop(stop[0])

    async def _get(
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
            self._fresh[final] = (rules.repository.name, path, context.clock.now())
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
        """Raise ``_Stop`` when fetching ``wanted`` would cross the budget
        or a disk bound."""
        settings = self.context.live.current
        size = wanted.size or 0
        committed = report.fetched_bytes + report.reserved
        if committed + size > settings.prefetch_budget or (
            committed >= settings.prefetch_budget
        ):
            raise _Stop("budget")
        usage = self.context.usage
        if settings.max_size and usage.bytes + size > settings.max_size:
            raise _Stop("max_size")
        if settings.min_free:
            try:
                free = free_bytes(self.context.store.root)
            except OSError:
                free = 0
            if free - size < settings.min_free:
                raise _Stop("min_free")

    async def _free_handle(self) -> None:
        """Wait until a download can start without waiting for a curl
        handle: a client's miss never queues behind a prefetch."""
        limit = self.context.live.current.upstream_connections
        while len(self.context.downloads) >= limit:
            await self._room.wait()

    def _download_ended(self, _download: Download) -> None:
        self._room.notify_all()

    def _used(self, repository: str, path: str) -> None:
        """A client asked for a prefetched file: counted, and no longer
        kept from eviction."""
        self.metrics.prefetch_used(repository)
        for stored, (owner, request, _when) in list(self._fresh.items()):
            if owner == repository and request == path:
                del self._fresh[stored]

    def _repository(self, name: str) -> RepositorySettings | None:
        for repository in self.context.live.current.all_repositories:
            if repository.name == name:
                return repository
        return None


def _joined(download: Download) -> str:
    """The outcome of a download another request started."""
    return "joined" if download.published or download.not_modified else "failed"
