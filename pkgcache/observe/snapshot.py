"""The status of the daemon as plain data, and as a small page for people.

Built from counters and the download registry only: reading the status
never touches the disk. ``serving/status.py`` serves it.
"""

from __future__ import annotations

import html
from typing import Any

from pkgcache import __version__
from pkgcache.clock import Clock
from pkgcache.fetching.inflight import Downloads
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
) -> dict[str, Any]:
    """The status as plain data: from counters and the registry, no disk.
    ``started``: when the daemon started, by ``clock.now()``."""
    requests: dict[str, int] = {
        str(r): int(metrics.value("pkgcache_requests_total", result=r)) for r in RESULTS
    }
    served = ("hit", "miss", "joined", "revalidated", "refreshed", "stale", "pass")
    answered = sum(requests[result] for result in served)
    from_copy = requests["hit"] + requests["revalidated"] + requests["stale"]
    from_cache = metrics.value("pkgcache_served_bytes_total", source="cache")
    from_upstream = metrics.value("pkgcache_served_bytes_total", source="upstream")
    fetched = metrics.value("pkgcache_upstream_bytes_total")
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
    return {
        "version": __version__,
        "uptime_seconds": round(clock.now() - started),
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
                "requests": metrics.repository_results(repository.name),
                "files_verified": int(
                    metrics.value(
                        "pkgcache_verified_files_total", repository=repository.name
                    )
                ),
                "files_unverified": int(
                    metrics.value(
                        "pkgcache_unverified_files_total", repository=repository.name
                    )
                ),
                "upstream_bytes": int(
                    metrics.value(
                        "pkgcache_repository_upstream_bytes_total",
                        repository=repository.name,
                    )
                ),
            }
            for repository in settings.all_repositories
        ],
        "joined_clients": int(metrics.value("pkgcache_joined_clients")),
        "digest_mismatches": list(metrics.recent_mismatches),
        "cache": {
            "files": usage.files,
            "bytes": usage.bytes,
            "counted": usage.counted,
        },
        "evicted": {
            "files": int(metrics.value("pkgcache_evicted_files_total")),
            "bytes": int(metrics.value("pkgcache_evicted_bytes_total")),
        },
    }


def render_html(status: dict[str, Any]) -> str:
    """A small page for people; status.json and metrics are for programs."""
    rows = (
        "".join(
            f"<tr><td>{html.escape(d['path'])}</td><td>{d['state']}</td>"
            f"<td>{_bytes(d['received'])}</td><td>{_bytes(d['size'])}</td>"
            f"<td>{_percent(d['progress'])}</td>"
            f"<td>{d['clients']}</td></tr>"
            for d in status["downloads"]
        )
        or '<tr><td colspan="6">none</td></tr>'
    )
    sources = "".join(
        f"<tr><td>{html.escape(source)}</td><td>"
        + html.escape(", ".join(f"{k}: {v}" for k, v in sorted(tally.items())) or "-")
        + "</td></tr>"
        for source, tally in status["sources"].items()
    )
    repositories = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['prefix'])}</td>"
        f"<td>{r['kind']}</td><td>{html.escape(' '.join(r['sources']))}</td><td>"
        + html.escape(", ".join(f"{k} {v}" for k, v in r["requests"].items() if v))
        + f"</td><td>{_bytes(r['upstream_bytes'])}</td>"
        f"<td>{r['files_verified']} / {r['files_unverified']}</td></tr>"
        for r in status["repositories"]
    )
    mismatches = (
        "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(m[field])}</td>"
                for field in ("path", "repository", "source", "expected", "actual")
            )
            + "</tr>"
            for m in reversed(status["digest_mismatches"])
        )
        or '<tr><td colspan="5">none</td></tr>'
    )
    ratio = status["hit_ratio"]
    requests = ", ".join(f"{k} {v}" for k, v in status["requests"].items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>package-cache status</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>
</head><body>
<h1>package-cache {status["version"]}</h1>
<p>Up {status["uptime_seconds"]} s. Requests: {requests}.
Hit ratio: {"-" if ratio is None else f"{ratio:.1%}"}.
Saved {_bytes(status["bytes_saved"])} of upstream traffic.
Cache: {status["cache"]["files"]} files, {_bytes(status["cache"]["bytes"])}.
Evicted: {status["evicted"]["files"]} files, {_bytes(status["evicted"]["bytes"])}.</p>
<h2>Downloads in flight</h2>
<table><tr><th>path</th><th>state</th><th>received</th><th>size</th>
<th>progress</th><th>clients</th></tr>{rows}</table>
<h2>Repositories</h2>
<table><tr><th>name</th><th>prefix</th><th>kind</th><th>sources</th>
<th>requests</th><th>downloaded</th><th>stored verified / on length</th></tr>
{repositories}</table>
<h2>Refused for their digest (latest)</h2>
<table><tr><th>path</th><th>repository</th><th>source</th><th>expected</th>
<th>got</th></tr>{mismatches}</table>
<h2>Sources</h2>
<table><tr><th>source</th><th>outcomes</th></tr>{sources}</table>
</body></html>
"""


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)
