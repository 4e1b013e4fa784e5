"""The registry of downloads in flight: at most one per path.

Everything runs on the IOLoop thread, so "look up, then join or start"
needs no lock: nothing runs between the look-up and the join. A download
leaves the registry in the same step that publishes or discards its
partial file, so a request that finds none and sees the final file is a
plain hit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pkgcache.clock import Clock
from pkgcache.digests.check import Hasher
from pkgcache.fetching.download import Download
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.upstream import Outcome, Upstream
from pkgcache.settings import LiveSettings
from pkgcache.store.cache import CacheStore
from pkgcache.store.keeping import Keeping
from pkgcache.store.paths import CacheKey

DownloadListener = Callable[[Download], None]
#: Missing paths remembered at most; forgotten all at once past this.
MISSING_REMEMBERED = 100_000


class Downloads:
    """Downloads by cache key. ``on_begin`` listeners hear of every download
    that starts streaming, ``on_end`` ones of every one that ends (eviction,
    usage, metrics)."""

    def __init__(
        self,
        store: CacheStore,
        upstream: Upstream,
        live: LiveSettings,
        keeping: Keeping | None = None,
        clock: Clock | None = None,
        *,
        hasher: Hasher,
    ) -> None:
        """``hasher``: the thread every download's bytes are hashed on."""
        self.hasher = hasher
        self.clock = clock or Clock()
        self.store = store
        self.keeping = keeping
        self.upstream = upstream
        self.live = live
        self.on_begin: list[DownloadListener] = []
        self.on_end: list[DownloadListener] = []
        #: Whether a complete file of this size may be stored (the cache's
        #: bounds); None: any size.
        self.fits: Callable[[int], bool] | None = None
        self._active: dict[CacheKey, Download] = {}
        #: Paths every source answered 4xx, until when (monotonic).
        self._missing: dict[CacheKey, float] = {}
        #: The source whose copy of a path did not match its digest: asked
        #: last next time.
        self._distrusted: dict[CacheKey, str] = {}

    def active(self) -> list[Download]:
        return list(self._active.values())

    def __len__(self) -> int:
        return len(self._active)

    def get(self, key: CacheKey) -> Download | None:
        return self._active.get(key)

    def start(self, key: CacheKey, plan: FetchPlan | None = None) -> Download:
        """Register and start a download; the caller checked there is none.
        A path that every source answers 4xx is remembered as missing for
        the plan's ``negative_for`` seconds (``known_missing``)."""
        assert key not in self._active
        distrusted = self._distrusted.get(key)
        if distrusted is not None and plan is not None and plan.route is not None:
            plan = dataclasses.replace(plan, route=plan.route.ending_with(distrusted))
        download = Download(
            key,
            self.store,
            self.upstream,
            self.live,
            self._began,
            self._forget,
            fits=self.fits,
            plan=plan,
            keeping=self.keeping,
            clock=self.clock,
            hasher=self.hasher,
        )
        self._active[key] = download
        download.start()
        return download

    def known_missing(self, key: CacheKey) -> bool:
        """True while ``key`` is remembered as answered 4xx by every source."""
        until = self._missing.get(key)
        if until is None:
            return False
        if self.clock.monotonic() < until:
            return True
        del self._missing[key]
        return False

    def pass_through(self, key: CacheKey, plan: FetchPlan | None = None) -> Download:
        """Start a download for one client that is never registered or
        stored: the cache could not keep the file (full or read-only disk),
        and that client must still get it."""
        download = Download(
            key,
            self.store,
            self.upstream,
            self.live,
            lambda _download: None,
            lambda _download: None,
            stored=False,
            plan=plan,
            clock=self.clock,
            hasher=self.hasher,
        )
        download.start()
        return download

    def _began(self, download: Download) -> None:
        for listener in self.on_begin:
            listener(download)

    def _forget(self, download: Download) -> None:
        if self._active.get(download.key) is download:
            del self._active[download.key]
        result = download.result
        negative_for = download.plan.negative_for
        if download.mismatch is not None and result and result.source:
            if len(self._distrusted) >= MISSING_REMEMBERED:
                self._distrusted.clear()
            self._distrusted[download.key] = result.source
        elif download.published:
            self._distrusted.pop(download.key, None)
        if negative_for and result and result.outcome is Outcome.NOT_FOUND:
            if len(self._missing) >= MISSING_REMEMBERED:
                self._missing.clear()
            self._missing[download.key] = self.clock.monotonic() + negative_for
        for listener in self.on_end:
            listener(download)
