"""The daemon's own culling: keep the cache within max_size, min_free and
max_age.

A pass scans the whole cache, so it runs in a worker thread; requests never
wait for it. Passes run every ``cull_interval`` while a bound is set (a
reload that sets, changes or clears the bounds reschedules them) and when a
download of known size would cross a bound: room is made while the download
streams, so it is stored into space already freed. Whether it would is
told without a scan: from the count below and the file system's free
space. Every pass (the first at start-up) counts the cache for
``CacheUsage``, merged with what is published while it runs, and makes
its removals through it; publishes and removals keep the count between
passes. ``max_age`` counts back from the daemon's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tornado.ioloop import IOLoop, PeriodicCallback

from pkgcache.clock import Clock
from pkgcache.settings import LiveSettings, Settings
from pkgcache.store import cull
from pkgcache.store.usage import CacheUsage

log = logging.getLogger("pkgcache.eviction")


@dataclass(frozen=True)
class EvictionPass:
    """What one finished pass did, for the status page."""

    #: When it ended (``clock.now()``).
    at: float
    files: int
    bytes: int
    #: The cache it found, before removing anything.
    scanned_files: int
    scanned_bytes: int


class Evictor:
    """Runs cull passes for one cache, at most one at a time."""

    def __init__(
        self,
        live: LiveSettings,
        root: str,
        usage: CacheUsage,
        on_evicted: Callable[[cull.CullResult], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.live = live
        self.clock = clock or Clock()
        #: The last pass that finished, None before the first.
        self.last_pass: EvictionPass | None = None
        self.root = root
        self.usage = usage
        self.on_evicted = on_evicted
        self._running = False
        self._again: tuple[int, str | None] | None = None
        self._timer: PeriodicCallback | None = None
        #: Store paths a pass must leave (``prefetch``'s fresh files).
        self.protected: Callable[[], frozenset[str]] = frozenset
        live.on_change(self.settings_changed)

    def start(self) -> None:
        """Count the cache now; cull every ``cull_interval`` if bounded."""
        self._schedule(self.live.current)
        self.run_pass()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def settings_changed(self, old: Settings, new: Settings) -> None:
        """Reschedule when the bounds or the interval changed; a bound that
        was not set before is applied at once."""
        if (old.evicts, old.cull_interval) == (new.evicts, new.cull_interval):
            return
        self._schedule(new)
        if new.evicts and not old.evicts:
            self.run_pass()

    def _schedule(self, settings: Settings) -> None:
        self.stop()
        if settings.evicts:
            self._timer = PeriodicCallback(self.run_pass, settings.cull_interval * 1000)
            self._timer.start()

    def could_fit(self, size: int) -> bool:
        """False for a file larger than ``max_size``: storing it would evict
        everything else and then itself, so it is served and not stored."""
        max_size = self.live.current.max_size
        return not max_size or size <= max_size

    def make_room(self, incoming: int, path: str) -> None:
        """A download of ``incoming`` bytes for ``path`` begins: evict now if
        it would cross max_size or min_free.

        Both are checked without a scan: max_size against ``CacheUsage``,
        min_free with one ``statvfs``. Only a download that would cross one
        starts a pass (which scans the whole cache)."""
        settings = self.live.current
        too_big = (
            bool(settings.max_size) and self.usage.bytes + incoming > settings.max_size
        )
        too_full = bool(settings.min_free) and not self._free(
            settings.min_free + incoming
        )
        if too_big or too_full:
            self.run_pass(incoming, path)

    def _free(self, wanted: int) -> bool:
        """Has the cache's file system ``wanted`` bytes free? When that
        cannot be told, no: the pass finds out."""
        try:
            return cull.free_bytes(self.root) >= wanted
        except OSError as error:
            log.debug("cannot tell the free space of %s: %s", self.root, error)
            return False

    def run_pass(self, reserve: int = 0, path: str | None = None) -> None:
        if self._running:
            if self._again is None or reserve >= self._again[0]:
                self._again = (reserve, path)
            return
        self._running = True
        IOLoop.current().add_callback(self._pass, reserve, path)

    async def _pass(self, reserve: int, path: str | None) -> None:
        settings = self.live.current
        protected = self.protected()
        now = self.clock.now()
        log.debug("scanning the cache (making room for %d bytes)", reserve)
        try:
            result, _victims = await IOLoop.current().run_in_executor(
                None,
                lambda: cull.cull(
                    self.root,
                    older_than=settings.max_age or None,
                    max_size=settings.max_size or None,
                    min_free=settings.min_free or None,
                    reserve=reserve,
                    reserved_path=path,
                    protected=protected,
                    usage=self.usage,
                    now=now,
                ),
            )
        except Exception:
            log.exception("eviction pass failed")
        else:
            self.last_pass = EvictionPass(
                self.clock.now(),
                result.files,
                result.bytes,
                result.scanned_files,
                result.scanned_bytes,
            )
            if result.files:
                if self.on_evicted is not None:
                    self.on_evicted(result)
                log.warning("evicted %s", result)
        finally:
            self._running = False
        if self._again is not None:
            (reserve, path), self._again = self._again, None
            self.run_pass(reserve, path)
