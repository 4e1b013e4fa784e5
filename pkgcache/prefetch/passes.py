"""Prefetch passes: every ``prefetch`` interval, per repository, refresh
the indexes clients used, find newer versions of what they downloaded
(``finders.py``), and fetch those files before anyone asks, each the way
a client's request would (``fetcher.py``).

``Prefetcher`` schedules the passes (a timer per repository, or ``POST
/.pkgcache/prefetch``), runs one: the finder's indexes refreshed and read,
rounds of the indexes they point at, then the files it wants, within
the budget and a quarter of ``upstream_connections`` at once; keeps each
repository's last report; and tells eviction what a pass fetched, so it
stays for one interval while no client used it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from tornado.ioloop import IOLoop, PeriodicCallback

from pkgcache.observe.demand import Demand
from pkgcache.observe.metrics import Metrics
from pkgcache.prefetch.alpine import AlpineFinder
from pkgcache.prefetch.arch import ArchFinder
from pkgcache.prefetch.cargo import CargoFinder
from pkgcache.prefetch.debian import DebianFinder
from pkgcache.prefetch.fetcher import PassFetcher, PassReport, PassStopped
from pkgcache.prefetch.finders import Finder, IndexRead, Wanted
from pkgcache.prefetch.golang import GoFinder
from pkgcache.prefetch.maven import MavenFinder
from pkgcache.prefetch.npm import NpmFinder
from pkgcache.prefetch.oci import OciFinder
from pkgcache.prefetch.pypi import PypiFinder
from pkgcache.prefetch.rpm import RpmFinder
from pkgcache.serving.context import ServingContext
from pkgcache.settings import RepositorySettings, Settings

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
        self.fetcher = PassFetcher(context, demand, metrics, self._fetched)
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
        except PassStopped as stop:
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
            outcome, target = await self.fetcher.get(index.path, index.accept, None)
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
                    outcome, _target = await self.fetcher.get(
                        item.path, None, (item, report)
                    )
                except PassStopped as reason:
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
            raise PassStopped(stop[0])

    def _fetched(self, repository: str, path: str, stored: str) -> None:
        self._fresh[stored] = (repository, path, self.context.clock.now())

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
