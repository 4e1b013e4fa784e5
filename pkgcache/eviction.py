"""The daemon's own culling: keep the cache within max_size, min_free and
max_age.

A pass scans the whole cache, so it runs in a worker thread; requests never
wait for it. Passes run every ``cull_interval`` and when a download of known
size would cross a bound (room is made while the download streams, so it is
stored into space already freed). The first pass also gives the metrics
their count of the cache, which later publishes and evictions keep up to
date without touching the disk.
"""

from __future__ import annotations

import logging

from tornado.ioloop import IOLoop, PeriodicCallback

from pkgcache import cull
from pkgcache.handler import CacheContext

log = logging.getLogger("pkgcache.eviction")


class Evictor:
    """Runs cull passes for one cache, at most one at a time."""

    def __init__(self, context: CacheContext) -> None:
        self.context = context
        self._running = False
        self._again: tuple[int, str | None] | None = None
        self._timer: PeriodicCallback | None = None

    def start(self) -> None:
        """Count the cache now; cull every ``cull_interval`` if bounded."""
        settings = self.context.settings
        if settings.evicts:
            self._timer = PeriodicCallback(self.run_pass, settings.cull_interval * 1000)
            self._timer.start()
        self.run_pass()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def make_room(self, incoming: int, path: str) -> None:
        """A download of ``incoming`` bytes for ``path`` begins: evict now if
        it would cross max_size or min_free."""
        settings = self.context.settings
        if not (settings.max_size or settings.min_free):
            return
        cached = self.context.metrics.value("pkgcache_cache_bytes")
        if settings.min_free or cached + incoming > settings.max_size:
            self.run_pass(incoming, path)

    def run_pass(self, reserve: int = 0, path: str | None = None) -> None:
        if self._running:
            if self._again is None or reserve >= self._again[0]:
                self._again = (reserve, path)
            return
        self._running = True
        IOLoop.current().add_callback(self._pass, reserve, path)

    async def _pass(self, reserve: int, path: str | None) -> None:
        settings = self.context.settings
        root = self.context.store.root
        try:
            result, _victims = await IOLoop.current().run_in_executor(
                None,
                lambda: cull.cull(
                    root,
                    older_than=settings.max_age or None,
                    max_size=settings.max_size or None,
                    min_free=settings.min_free or None,
                    reserve=reserve,
                    reserved_path=path,
                ),
            )
        except Exception:
            log.exception("eviction pass failed")
        else:
            metrics = self.context.metrics
            metrics.counted(result.scanned_files, result.scanned_bytes)
            if result.files:
                metrics.evicted(result.files, result.bytes)
                log.warning("evicted %s", result)
        finally:
            self._running = False
        if self._again is not None:
            (reserve, path), self._again = self._again, None
            self.run_pass(reserve, path)
