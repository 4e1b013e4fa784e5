"""Counters of what the cache does, kept as it happens (no request walks
the disk), exposed in Prometheus format through ``prometheus_client``.

One ``Metrics`` per server, with its own registry, so tests and several
servers in one process never share counts.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pkgcache.observe.results import FROM_CACHE, Result
from pkgcache.settings import LiveSettings
from pkgcache.store.usage import CacheUsage

#: Results of a request, as in the access log (the daemon's own pages aside).
RESULTS = tuple(result for result in Result if result is not Result.STATUS)

#: Seconds: a small hit from memory takes about a millisecond, a large file
#: through a slow source minutes; a source's first byte falls in between.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


class Samples:
    """The metrics' values at one moment (``Metrics.samples``)."""

    def __init__(self, table: dict[tuple[str, frozenset[tuple[str, str]]], float]):
        self._table = table
        #: Requests by repository, then result (read once per repository).
        self._results: dict[str, dict[str, int]] = {}
        for (name, labels), value in table.items():
            if name == "pkgcache_repository_requests_total":
                by = dict(labels)
                tally = self._results.setdefault(by["repository"], {})
                tally[by["result"]] = int(value)

    def value(self, name: str, **labels: str) -> float:
        return self._table.get((name, frozenset(labels.items())), 0.0)

    def repository_results(self, repository: str) -> dict[str, int]:
        """Requests of one repository by result."""
        tally = self._results.get(repository, {})
        return {result: tally.get(result, 0) for result in RESULTS}


class Metrics:
    """The daemon's counters and gauges; see ``/.pkgcache/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pkgcache_requests", "Requests answered, by result", ["result"], registry=r
        )
        self.served_bytes = Counter(
            "pkgcache_served_bytes",
            "Body bytes sent to clients, by where they came from (cache: a "
            "hit; upstream: a miss or a join)",
            ["source"],
            registry=r,
        )
        self.upstream_bytes = Counter(
            "pkgcache_upstream_bytes", "Body bytes received from sources", registry=r
        )
        self.fetches = Counter(
            "pkgcache_upstream_fetches",
            "Upstream attempts, by source and outcome",
            ["source", "outcome"],
            registry=r,
        )
        self.downloads_in_flight = Gauge(
            "pkgcache_downloads_in_flight", "Upstream downloads running", registry=r
        )
        self.requests_in_flight = Gauge(
            "pkgcache_requests_in_flight",
            "Requests being answered (a stop waits for them)",
            registry=r,
        )
        self.joined_clients = Gauge(
            "pkgcache_joined_clients",
            "Clients following a download another client started",
            registry=r,
        )
        self.cache_bytes = Gauge(
            "pkgcache_cache_bytes", "Bytes of complete files in the cache", registry=r
        )
        self.cache_files = Gauge(
            "pkgcache_cache_files", "Complete files in the cache", registry=r
        )
        self.evicted_files = Counter(
            "pkgcache_evicted_files", "Files removed by eviction", registry=r
        )
        self.evicted_bytes = Counter(
            "pkgcache_evicted_bytes", "Bytes removed by eviction", registry=r
        )
        self.repository_requests = Counter(
            "pkgcache_repository_requests",
            "Requests answered, by repository and result",
            ["repository", "result"],
            registry=r,
        )
        self.repository_upstream_bytes = Counter(
            "pkgcache_repository_upstream_bytes",
            "Body bytes downloaded from sources, by repository",
            ["repository"],
            registry=r,
        )
        self.digest_mismatches = Counter(
            "pkgcache_digest_mismatches",
            "Downloads refused because their bytes did not match the digest "
            "their path, index or headers gave, by repository and source",
            ["repository", "source"],
            registry=r,
        )
        self.verified_files = Counter(
            "pkgcache_verified_files",
            "Files stored after their bytes matched a known digest, by repository",
            ["repository"],
            registry=r,
        )
        self.unverified_files = Counter(
            "pkgcache_unverified_files",
            "Files stored on their length alone (no digest known), by repository",
            ["repository"],
            registry=r,
        )
        self.request_duration = Histogram(
            "pkgcache_request_duration_seconds",
            "Seconds from a request's arrival to its answer's end, by "
            "repository (-: none) and result",
            ["repository", "result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_first_byte = Histogram(
            "pkgcache_upstream_first_byte_seconds",
            "Seconds from an upstream attempt's start to the first line of "
            "its answer, whatever its status (no answer: not counted), by "
            "repository and source",
            ["repository", "source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.disk_free = Gauge(
            "pkgcache_disk_free_bytes",
            "Bytes free on the file system holding the cache (what min_free bounds)",
            registry=r,
        )
        self.disk_size = Gauge(
            "pkgcache_disk_size_bytes",
            "Size of the file system holding the cache",
            registry=r,
        )
        self.disk_bound = Gauge(
            "pkgcache_disk_bound_bytes",
            "The eviction bounds as configured, 0: none (max_size bounds "
            "pkgcache_cache_bytes, min_free pkgcache_disk_free_bytes)",
            ["bound"],
            registry=r,
        )
        self.prefetch_files_total = Counter(
            "pkgcache_prefetch_files",
            "Files a prefetch pass asked for, by repository and outcome (fetched,"
            " present, joined, failed, refused)",
            ["repository", "outcome"],
            registry=r,
        )
        self.prefetch_bytes_total = Counter(
            "pkgcache_prefetch_bytes",
            "Bytes prefetch passes fetched, by repository",
            ["repository"],
            registry=r,
        )
        self.prefetch_used_total = Counter(
            "pkgcache_prefetch_used",
            "Prefetched files a client then asked for, by repository",
            ["repository"],
            registry=r,
        )
        self.prefetch_stops = Counter(
            "pkgcache_prefetch_stopped",
            "Prefetch passes that stopped early, by repository and reason"
            " (budget, max_size, min_free, error)",
            ["repository", "reason"],
            registry=r,
        )
        for result in RESULTS:
            self.requests.labels(result)
        #: The last files refused for their digest, for the status page.
        self.recent_mismatches: deque[dict[str, str]] = deque(maxlen=20)
        #: Per source: outcome -> count, for the status page.
        self.source_outcomes: dict[str, Tally[str]] = {}

    def track_downloads(self, count: Callable[[], int]) -> None:
        self.downloads_in_flight.set_function(lambda: float(count()))

    def track_requests(self, count: Callable[[], int]) -> None:
        self.requests_in_flight.set_function(lambda: float(count()))

    def track_usage(self, usage: CacheUsage) -> None:
        """Show the store's own count of the cache (read at each scrape)."""
        self.cache_files.set_function(lambda: float(usage.files))
        self.cache_bytes.set_function(lambda: float(usage.bytes))

    def track_disk(self, root: str, live: LiveSettings) -> None:
        """Show the file system holding ``root`` and the bounds of the
        current settings, read at each scrape (one ``statvfs`` each)."""
        self.disk_free.set_function(lambda: _statvfs_bytes(root, free=True))
        self.disk_size.set_function(lambda: _statvfs_bytes(root, free=False))
        bounds = self.disk_bound
        bounds.labels("max_size").set_function(lambda: float(live.current.max_size))
        bounds.labels("min_free").set_function(lambda: float(live.current.min_free))

    def request_done(
        self,
        result: str,
        served: int,
        repository: str = "-",
        seconds: float | None = None,
    ) -> None:
        """One request answered; ``seconds`` it took, when known."""
        self.requests.labels(result).inc()
        if seconds is not None:
            self.request_duration.labels(repository, result).observe(seconds)
        if repository != "-":
            self.repository_requests.labels(repository, result).inc()
        if served:
            source = "cache" if result in FROM_CACHE else "upstream"
            self.served_bytes.labels(source).inc(served)

    def downloaded(self, repository: str, received: int) -> None:
        if received:
            self.repository_upstream_bytes.labels(repository).inc(received)

    def repository_results(self, repository: str) -> dict[str, int]:
        """Requests of one repository by result, for the status page."""
        return {
            result: int(
                self.value(
                    "pkgcache_repository_requests_total",
                    repository=repository,
                    result=result,
                )
            )
            for result in RESULTS
        }

    def fetch_done(self, source: str, outcome: str, received: int) -> None:
        self.fetches.labels(source, outcome).inc()
        self.source_outcomes.setdefault(source, Tally())[outcome] += 1
        if received:
            self.upstream_bytes.inc(received)

    def first_byte(self, repository: str, source: str, seconds: float) -> None:
        """An upstream attempt's answer began ``seconds`` after it started."""
        self.upstream_first_byte.labels(repository, source).observe(seconds)

    def digest_mismatch(
        self, repository: str, source: str, details: dict[str, str]
    ) -> None:
        """A download refused for its digest; ``details`` (path, expected,
        actual) for the status page."""
        self.digest_mismatches.labels(repository, source).inc()
        self.recent_mismatches.append(
            {**details, "repository": repository, "source": source}
        )

    def file_stored(self, repository: str, verified: bool) -> None:
        """A new file in the cache, checked against a digest or not."""
        counter = self.verified_files if verified else self.unverified_files
        counter.labels(repository).inc()

    def evicted(self, files: int, size: int) -> None:
        self.evicted_files.inc(files)
        self.evicted_bytes.inc(size)

    def samples(self) -> Samples:
        """Every current value at once, for the status page: one walk of
        the registry (``value`` walks it for each look-up)."""
        table: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                table[sample.name, frozenset(sample.labels.items())] = sample.value
        return Samples(table)

    def prefetch_file(self, repository: str, outcome: str) -> None:
        self.prefetch_files_total.labels(repository, outcome).inc()

    def prefetch_bytes(self, repository: str, size: int) -> None:
        self.prefetch_bytes_total.labels(repository).inc(size)

    def prefetch_used(self, repository: str) -> None:
        self.prefetch_used_total.labels(repository).inc()

    def prefetch_stopped(self, repository: str, reason: str) -> None:
        self.prefetch_stops.labels(repository, reason).inc()

    def value(self, name: str, **labels: str) -> float:
        """One current value, for the status page (never for a decision)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _statvfs_bytes(root: str, free: bool) -> float:
    """Free bytes (as an unprivileged writer sees them, like min_free) or
    the size of the file system holding ``root``; NaN when it cannot be
    read, so one missing folder never fails the whole scrape."""
    try:
        usage = os.statvfs(root)
    except OSError:
        return float("nan")
    return float((usage.f_bavail if free else usage.f_blocks) * usage.f_frsize)
