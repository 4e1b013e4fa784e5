"""What every request handler is given: the parts it works with, built and
connected by ``wiring.py``, and the count of requests in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pkgcache.clock import Clock
from pkgcache.digests.book import DigestBook
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.upstream import Upstream
from pkgcache.observe.board import StatusBoard
from pkgcache.observe.demand import Demand
from pkgcache.observe.metrics import Metrics
from pkgcache.registries.fronts import Fronts
from pkgcache.repositories.rules import Repositories
from pkgcache.settings import LiveSettings
from pkgcache.store.cache import CacheStore
from pkgcache.store.meta import MetaStore
from pkgcache.store.smallfiles import SmallFiles
from pkgcache.store.usage import CacheUsage


class InFlight:
    """Counts requests being answered, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass(frozen=True)
class ServingContext:
    """One per server; settings are read through ``live.current``."""

    live: LiveSettings
    store: CacheStore
    upstream: Upstream
    downloads: Downloads
    repositories: Repositories
    fronts: Fronts
    digests: DigestBook
    small_files: SmallFiles
    meta: MetaStore
    usage: CacheUsage
    metrics: Metrics
    in_flight: InFlight
    #: Every reading of time (freshness, negative answers, stale limits).
    clock: Clock
    #: When the daemon started, by ``clock.now()``.
    started: float
    #: The status page's recorders (history, sources, trouble, top files).
    board: StatusBoard
    #: What clients were given, per repository (prefetch follows it).
    demand: Demand
