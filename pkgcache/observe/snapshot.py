"""The status of the daemon as plain data (``status.json``); the page for
people is drawn from it (``statuspage.py``).

Built from counters, the download registry and the status board's
recorders (``board.py``); reading the status touches the disk only for
one ``statvfs`` of the cache folder. Times are given as epoch seconds and,
beside them under the same name with ``_iso``, as ISO 8601 in UTC.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from pkgcache import __version__
from pkgcache.clock import Clock
from pkgcache.fetching.inflight import Downloads
from pkgcache.observe.board import StatusBoard
from pkgcache.observe.history import CATEGORIES, FROM_CACHE_BYTES, Ring, Series
from pkgcache.observe.metrics import RESULTS, Metrics
from pkgcache.settings import Settings, display_source
from pkgcache.store.usage import CacheUsage


def snapshot(
    metrics: Metrics,
    usage: CacheUsage,
    downloads: Downloads,
    settings: Settings,
    clock: Clock,
    started: float,
    board: StatusBoard,
) -> dict[str, Any]:
    """The status as plain data. ``started``: when the daemon started, by
    ``clock.now()``."""
    counters = metrics.samples()
    requests: dict[str, int] = {
        str(r): int(counters.value("pkgcache_requests_total", result=r))
        for r in RESULTS
    }
    served = ("hit", "miss", "joined", "revalidated", "refreshed", "stale", "pass")
    answered = sum(requests[result] for result in served)
    from_copy = requests["hit"] + requests["revalidated"] + requests["stale"]
    from_cache = counters.value("pkgcache_served_bytes_total", source="cache")
    from_upstream = counters.value("pkgcache_served_bytes_total", source="upstream")
    fetched = counters.value("pkgcache_upstream_bytes_total")
    in_flight = []
    for download in downloads.active():
        size = download.head.content_length if download.head else None
        in_flight.append(
            {
                "path": str(download.key),
                "state": download.state.value,
                "received": download.received,
                "size": size,
                "progress": round(download.received / size, 3) if size else None,
                "clients": download.reader_count,
                "seconds": round(clock.monotonic() - download.started, 1),
            }
        )
    now = clock.now()
    return {
        "version": __version__,
        "uptime_seconds": round(clock.now() - started),
        "now": _now(board, usage, settings, now, started, clock.monotonic()),
        "history": _history(board, settings, now),
        "source_health": _source_health(board, settings, now),
        "prefetch": {
            name: {**report, "finished_iso": iso(report.get("finished"))}
            for name, report in sorted(board.prefetch_passes().items())
        },
        "trouble": [
            {**incident.as_data(), "at_iso": iso(incident.at)}
            for incident in board.trouble.latest()
        ],
        "top": {
            "most_requested": [
                {"path": path, "requests": count}
                for path, count in board.top.most_requested(now)
            ],
            "largest": [
                {"path": path, "bytes": size} for path, size in board.top.largest(now)
            ],
        },
        "sources": {
            display_source(source): dict(
                metrics.source_outcomes.get(display_source(source), {})
            )
            for source in settings.sources
        },
        "requests": requests,
        "hit_ratio": round(from_copy / answered, 3) if answered else None,
        "bytes_served_from_cache": int(from_cache),
        "bytes_served_from_upstream": int(from_upstream),
        "bytes_fetched_upstream": int(fetched),
        "bytes_saved": int(max(0.0, from_cache + from_upstream - fetched)),
        "downloads": in_flight,
        "repositories": [
            {
                "name": repository.name,
                "prefix": repository.prefix,
                "kind": repository.kind,
                "sources": {
                    display_source(source): dict(
                        metrics.source_outcomes.get(display_source(source), {})
                    )
                    for source in repository.sources
                },
                "requests": counters.repository_results(repository.name),
                "files_verified": int(
                    counters.value(
                        "pkgcache_verified_files_total", repository=repository.name
                    )
                ),
                "files_unverified": int(
                    counters.value(
                        "pkgcache_unverified_files_total", repository=repository.name
                    )
                ),
                "upstream_bytes": int(
                    counters.value(
                        "pkgcache_repository_upstream_bytes_total",
                        repository=repository.name,
                    )
                ),
            }
            for repository in settings.all_repositories
        ],
        "joined_clients": int(counters.value("pkgcache_joined_clients")),
        "digest_mismatches": list(metrics.recent_mismatches),
        "cache": {
            "files": usage.files,
            "bytes": usage.bytes,
            "counted": usage.counted,
        },
        "evicted": {
            "files": int(counters.value("pkgcache_evicted_files_total")),
            "bytes": int(counters.value("pkgcache_evicted_bytes_total")),
        },
    }


def iso(epoch: float | None) -> str | None:
    """``epoch`` as ISO 8601 in UTC, to the second (None stays None)."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _now(
    board: StatusBoard,
    usage: CacheUsage,
    settings: Settings,
    now: float,
    started: float,
    monotonic: float,
) -> dict[str, Any]:
    rates = board.rates.per_second(monotonic)
    disk: dict[str, Any] = {"path": settings.cache}
    try:
        total, used, free = shutil.disk_usage(settings.cache)
        disk.update(total=total, used=used, free=free)
    except OSError:
        disk.update(total=None, used=None, free=None)
    disk.update(
        cache_bytes=usage.bytes,
        cache_files=usage.files,
        max_size=settings.max_size or None,
        min_free=settings.min_free or None,
    )
    last = board.last_eviction()
    eviction = None
    if last is not None:
        eviction = {
            "at": last.at,
            "at_iso": iso(last.at),
            "files": last.files,
            "bytes": last.bytes,
            "scanned_files": last.scanned_files,
            "scanned_bytes": last.scanned_bytes,
        }
    return {
        "time": now,
        "time_iso": iso(now),
        "started": started,
        "started_iso": iso(started),
        "uptime": human_duration(now - started),
        "requests_per_second": rates["requests"],
        "bytes_out_per_second": rates["bytes_out"],
        "bytes_in_per_second": rates["bytes_in"],
        "disk": disk,
        "last_eviction": eviction,
    }


def human_duration(seconds: float) -> str:
    """``3 days 4 h``, ``4 h 12 min``, ``12 min 5 s``, ``5 s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def _history(board: StatusBoard, settings: Settings, now: float) -> dict[str, Any]:
    """Buckets as rows of ``columns``, oldest first (null: nothing
    counted), and their sums, for all requests and per repository."""
    empty = Series()
    return {
        "columns": [*CATEGORIES, "bytes_from_cache", "bytes_from_upstream", "requests"],
        "minutes": _axis(empty.minutes, now),
        "hours": _axis(empty.hours, now),
        "total": _series(board.history.total, now),
        "repositories": {
            repository.name: _series(
                board.history.series(repository.name) or empty, now
            )
            for repository in settings.all_repositories
        },
    }


def _axis(ring: Ring, now: float) -> dict[str, Any]:
    start = ring.first_start(now)
    return {"step": ring.step, "start": start, "start_iso": iso(start)}


def _series(series: Series, now: float) -> dict[str, Any]:
    return {
        "last_hour": _summary(series.minutes.totals(now)),
        "last_week": _summary(series.hours.totals(now)),
        "minutes": series.minutes.window(now),
        "hours": series.hours.window(now),
    }


def _summary(totals: list[int]) -> dict[str, Any]:
    from_cache, from_upstream = totals[FROM_CACHE_BYTES : FROM_CACHE_BYTES + 2]
    served = from_cache + from_upstream
    return {
        "requests": dict(zip(CATEGORIES, totals, strict=False)),
        "bytes_from_cache": from_cache,
        "bytes_from_upstream": from_upstream,
        "saving": round(from_cache / served, 3) if served else None,
    }


def _source_health(
    board: StatusBoard, settings: Settings, now: float
) -> list[dict[str, Any]]:
    """Every source and file source of every repository, in order."""
    listed = []
    for repository in settings.all_repositories:
        for role, sources in (
            ("source", repository.sources),
            ("file source", repository.file_sources),
        ):
            for url in sources:
                shown = display_source(url)
                summary = board.sources.summary(shown, now)
                listed.append(
                    {
                        "repository": repository.name,
                        "role": role,
                        "source": shown,
                        **summary,
                        "last_success_iso": iso(summary["last_success"]),
                        "last_failure_iso": iso(summary["last_failure"]),
                    }
                )
    return listed
