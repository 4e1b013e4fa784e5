"""The status page an admin keeps open, drawn from ``snapshot``'s data:
now, history (plots made here as inline SVG, ``plots.py``), repositories,
sources, recent trouble, top files. Plain HTML and CSS, no script and
nothing fetched from elsewhere; it reloads itself every 10 seconds.

Everything that came from a request or an upstream (paths, reasons,
clients, names from the config) is escaped with ``html.escape``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

from pkgcache.observe import plots
from pkgcache.observe.history import (
    CATEGORIES,
    FROM_CACHE_BYTES,
    FROM_UPSTREAM_BYTES,
    REQUESTS,
)

#: Colours of the request categories, in stacking order.
COLOURS = {
    "hit": "#2e7d32",
    "revalidated": "#66bb6a",
    "stale": "#c0ca33",
    "miss": "#1565c0",
    "joined": "#42a5f5",
    "refreshed": "#00897b",
    "pass": "#8e24aa",
    "negative": "#9e9e9e",
    "refused": "#e53935",
}
_STACK = [(CATEGORIES.index(name), colour) for name, colour in COLOURS.items()]
CACHE_COLOUR = "#2e7d32"
UPSTREAM_COLOUR = "#1565c0"
_BYTES = [(FROM_CACHE_BYTES, CACHE_COLOUR), (FROM_UPSTREAM_BYTES, UPSTREAM_COLOUR)]

_STYLE = """
body{font:13px/1.35 system-ui,sans-serif;margin:12px 18px;color:#222;background:#fafafa}
h1{font-size:19px;margin:0 0 6px}h2{font-size:15px;margin:16px 0 4px;
border-bottom:1px solid #ccc}h3{font-size:13px;margin:6px 0 2px}
table{border-collapse:collapse;background:#fff}
td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f0f0f0;font-weight:600}td.n,th.n{text-align:right}
.cards{display:flex;flex-wrap:wrap;gap:6px}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:4px 10px}
.card b{display:block;font-size:16px}.card span{color:#666;font-size:11px}
.card b span{color:inherit;font-size:inherit}
.plots{display:flex;flex-wrap:wrap;gap:10px}
.plot{background:#fff;border:1px solid #ddd}.plot text{font-size:10px;fill:#555}
.legend i{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px}
tr.failing td{background:#fde8e8}.bad{color:#c62828;font-weight:600}
.good{color:#2e7d32}.quiet{color:#888}.path{font-family:monospace;
word-break:break-all;max-width:560px}
.cols{display:flex;flex-wrap:wrap;gap:18px}.src{min-width:230px}.when{white-space:nowrap}
"""


def render_html(status: dict[str, Any]) -> str:
    """The whole page."""
    now = status["now"]["time"]
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>package-cache status</title>"
            '<link rel="icon" href="data:,">'
            '<meta http-equiv="refresh" content="10">'
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>package-cache {escape(status['version'])}</h1>",
            _now_section(status),
            _history_section(status),
            _repositories_section(status, now),
            _sources_section(status, now),
            _prefetch_section(status, now),
            _trouble_section(status, now),
            _top_section(status),
            "</body></html>\n",
        )
    )


def _now_section(status: dict[str, Any]) -> str:
    now = status["now"]
    disk = now["disk"]
    ratio = status["hit_ratio"]
    eviction = now["last_eviction"]
    if eviction is None:
        evicted, removed = "none yet", "eviction pass"
    else:
        evicted = _when(eviction["at"], now["time"])
        removed = (
            f"last eviction: {eviction['files']} files, {_bytes(eviction['bytes'])}"
        )
    bound = f" of {_bytes(disk['max_size'])}" if disk["max_size"] else ""
    floor = f", keep {_bytes(disk['min_free'])} free" if disk["min_free"] else ""
    cards = [
        (
            f"up {escape(now['uptime'])}",
            f"since {_local(now['started'])}",
        ),
        (f"{now['requests_per_second']:g} req/s", "over the last minute"),
        (f"{_bytes(now['bytes_out_per_second'])}/s out", "to clients"),
        (f"{_bytes(now['bytes_in_per_second'])}/s in", "from upstream"),
        ("-" if ratio is None else f"{ratio:.1%}", "hit ratio since start"),
        (_bytes(status["bytes_saved"]), "upstream traffic saved"),
        (
            f"{_bytes(disk['cache_bytes'])}{bound}",
            f"cache, {disk['cache_files']} files",
        ),
        (
            f"{_bytes(disk['free'])} free",
            f"disk {_bytes(disk['used'])} used of {_bytes(disk['total'])}{floor}",
        ),
        (evicted, removed),
    ]
    downloads = status["downloads"]
    rows = "".join(
        f'<tr><td class="path">{escape(d["path"])}</td><td>{escape(d["state"])}</td>'
        f'<td class="n">{_bytes(d["received"])} / {_bytes(d["size"])}</td>'
        f"<td>{_progress(d['progress'])}</td>"
        f'<td class="n">{d["clients"]}</td><td class="n">{d["seconds"]} s</td></tr>'
        for d in downloads
    )
    table = (
        "<table><tr><th>path</th><th>state</th><th class=n>received / size</th>"
        "<th>progress</th><th class=n>clients</th><th class=n>for</th></tr>"
        f"{rows}</table>"
        if downloads
        else '<p class="quiet">No download in flight.</p>'
    )
    requests = ", ".join(f"{k} {v}" for k, v in status["requests"].items() if v)
    return (
        '<h2>Now</h2><div class="cards">'
        + "".join(
            f'<div class="card"><b>{big}</b><span>{small}</span></div>'
            for big, small in cards
        )
        + "</div>"
        + f"<p>Hit ratio: {'-' if ratio is None else f'{ratio:.1%}'}. "
        f"Requests since start: {escape(requests) or 'none'}.</p>"
        + f"<h3>Downloads in flight ({len(downloads)})</h3>{table}"
    )


def _history_section(status: dict[str, Any]) -> str:
    history = status["history"]
    total = history["total"]
    minutes, hours = history["minutes"], history["hours"]
    legend = "".join(
        f'<i style="background:{colour}"></i>{name}' for name, colour in COLOURS.items()
    )
    bytes_legend = (
        f'<i style="background:{CACHE_COLOUR}"></i>from cache'
        f'<i style="background:{UPSTREAM_COLOUR}"></i>from upstream'
    )
    hour_labels = (_clock(minutes["start"]), "now")
    week_labels = (_day(hours["start"]), "now")
    return (
        "<h2>History</h2>"
        f'<div class="legend">Requests: {legend} &nbsp; Bytes: {bytes_legend}</div>'
        '<div class="plots">'
        + _figure(
            "Requests per minute, last hour",
            plots.stacked_bars(total["minutes"], _STACK, hour_labels),
            total["last_hour"],
        )
        + _figure(
            "Bytes served per minute, last hour",
            plots.lines(total["minutes"], _BYTES, hour_labels, "B"),
            total["last_hour"],
        )
        + _figure(
            "Requests per hour, last 7 days",
            plots.stacked_bars(total["hours"], _STACK, week_labels),
            total["last_week"],
        )
        + _figure(
            "Bytes served per hour, last 7 days",
            plots.lines(total["hours"], _BYTES, week_labels, "B"),
            total["last_week"],
        )
        + "</div>"
    )


def _figure(title: str, svg: str, summary: dict[str, Any]) -> str:
    requests = sum(summary["requests"].values())
    return (
        f"<div><h3>{title}</h3>{svg}<div>{requests} requests; "
        f"{_bytes(summary['bytes_from_cache'])} from cache, "
        f"{_bytes(summary['bytes_from_upstream'])} from upstream; "
        f"saving {_ratio(summary['saving'])}</div></div>"
    )


def _repositories_section(status: dict[str, Any], now: float) -> str:
    history = status["history"]["repositories"]
    rows = []
    for repository in status["repositories"]:
        series = history.get(repository["name"])
        if series is None:
            continue
        hour, week = series["last_hour"], series["last_week"]
        rows.append(
            f"<tr><td><b>{escape(repository['name'])}</b><br>"
            f'<span class="quiet">{escape(repository["prefix"])} '
            f"{escape(repository['kind'])}</span></td>"
            f"<td>{_counts(hour['requests'])}</td>"
            f"<td>{_counts(week['requests'])}</td>"
            f"<td>{plots.sparkline(_requests(series['hours'], 6), '#1565c0')}</td>"
            f'<td class="n">{_bytes(week["bytes_from_cache"])}</td>'
            f'<td class="n">{_bytes(week["bytes_from_upstream"])}</td>'
            f'<td class="n">{_ratio(week["saving"])}</td>'
            f'<td class="n">{repository["files_verified"]} / '
            f"{repository['files_unverified']}</td></tr>"
        )
    return (
        "<h2>Repositories</h2>"
        "<table><tr><th>repository</th><th>last hour</th>"
        "<th>last 7 days</th><th>per 6 h</th><th class=n>from cache (7 d)</th>"
        "<th class=n>from upstream (7 d)</th><th class=n>saving</th>"
        "<th class=n>stored verified / on length</th></tr>"
        + ("".join(rows) or '<tr><td colspan="8">none configured</td></tr>')
        + "</table>"
    )


def _requests(rows: Sequence[Sequence[int] | None], group: int = 1) -> list[int]:
    """Requests per bucket (every category), ``group`` buckets summed."""
    counts = [0 if row is None else row[REQUESTS] for row in rows]
    if group == 1:
        return counts
    return [sum(counts[i : i + group]) for i in range(0, len(counts), group)]


def _counts(requests: dict[str, int]) -> str:
    shown = [
        f'<span style="color:{COLOURS[name]}">{name}</span> {count}'
        for name, count in requests.items()
        if count
    ]
    return " · ".join(shown) or '<span class="quiet">none</span>'


def _sources_section(status: dict[str, Any], now: float) -> str:
    rows = []
    for source in status["source_health"]:
        failing = source["failing"]
        asked = source["last_success"] is not None or source["last_failure"] is not None
        if failing:
            marker = '<span class="bad">✖ failing</span>'
        elif asked:
            marker = '<span class="good">✔ ok</span>'
        else:
            marker = '<span class="quiet">not asked yet</span>'
        rate = source["error_rate"]
        rows.append(
            f'<tr class="{"failing" if failing else "source"}">'
            f"<td>{escape(source['repository'])}</td><td>{escape(source['role'])}</td>"
            f'<td class="path src">{escape(source["source"])}</td><td>{marker}</td>'
            f"<td>{_when(source['last_success'], now)}</td>"
            f"<td>{_when(source['last_failure'], now)}</td>"
            f'<td class="path">{escape(source["last_failure_reason"])}</td>'
            f'<td class="n">{_ratio(rate)} of {source["attempts_last_hour"]}</td>'
            f'<td class="n">{_seconds(source["first_byte_mean"])}</td>'
            f'<td class="n">{_seconds(source["first_byte_p95"])}</td></tr>'
        )
    return (
        "<h2>Sources</h2>"
        "<table><tr><th>repository</th><th>role</th><th>source</th><th>state</th>"
        "<th>last success</th><th>last failure</th><th>reason</th>"
        "<th class=n>errors, last hour</th><th class=n>first byte, mean</th>"
        "<th class=n>p95</th></tr>"
        + ("".join(rows) or '<tr><td colspan="10">none configured</td></tr>')
        + "</table>"
    )


def _prefetch_section(status: dict[str, Any], now: float) -> str:
    """Each repository's last prefetch pass; nothing when none ran."""
    passes = status.get("prefetch") or {}
    if not passes:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td>"
        f"<td>{_when(report['finished'], now) if report['finished'] else 'running'}"
        f"</td><td>{_outcomes(report['files'])}</td>"
        f"<td>{_bytes(report['bytes'])}</td><td>{report['indexes']}</td>"
        f"<td>{escape(report['stopped'] or '')}</td></tr>"
        for name, report in passes.items()
    )
    return (
        "<h2>Prefetch</h2><table><tr><th>repository</th><th>last pass</th>"
        "<th>files</th><th>fetched</th><th>indexes</th><th>stopped</th></tr>"
        f"{rows}</table>"
    )


def _outcomes(files: dict[str, int]) -> str:
    """``fetched 3 · present 2``: a pass's files by outcome."""
    shown = [f"{escape(name)} {count}" for name, count in files.items() if count]
    return " · ".join(shown) or '<span class="quiet">none</span>'


def _trouble_section(status: dict[str, Any], now: float) -> str:
    rows = "".join(
        f'<tr class="trouble"><td>{_when(t["at"], now)}</td>'
        f"<td>{escape(t['kind'])}</td>"
        f'<td class="path">{escape(t["path"])}</td><td>{escape(t["client"])}</td>'
        f'<td class="path">{escape(t["detail"])}</td></tr>'
        for t in status["trouble"]
    )
    return "<h2>Recent trouble</h2>" + (
        "<table><tr><th>when</th><th>what</th><th>path</th><th>client</th>"
        f"<th>detail</th></tr>{rows}</table>"
        if rows
        else '<p class="quiet">Nothing went wrong lately.</p>'
    )


def _top_section(status: dict[str, Any]) -> str:
    top = status["top"]
    most = "".join(
        f'<tr><td class="path">{escape(f["path"])}</td>'
        f'<td class="n">{f["requests"]}</td></tr>'
        for f in top["most_requested"]
    )
    largest = "".join(
        f'<tr><td class="path">{escape(f["path"])}</td>'
        f'<td class="n">{_bytes(f["bytes"])}</td></tr>'
        for f in top["largest"]
    )
    empty = '<tr><td colspan="2" class="quiet">none yet</td></tr>'
    return (
        '<h2>Top files of the last day</h2><div class="cols">'
        "<div><h3>Most requested</h3><table><tr><th>path</th><th class=n>requests"
        f"</th></tr>{most or empty}</table></div>"
        "<div><h3>Largest</h3><table><tr><th>path</th><th class=n>size</th></tr>"
        f"{largest or empty}</table></div></div>"
    )


def _progress(value: float | None) -> str:
    if value is None:
        return '<span class="quiet">size unknown</span>'
    return f'<progress value="{value:.3f}" max="1"></progress> {value:.0%}'


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _local(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M", time.localtime(epoch))


def _day(epoch: float) -> str:
    return time.strftime("%a %d %b", time.localtime(epoch))


def _when(epoch: float | None, now: float) -> str:
    """A time as the server's local time, and how long ago."""
    if epoch is None:
        return '<span class="quiet">never</span>'
    ago = max(0.0, now - epoch)
    if ago < 60:
        since = f"{ago:.0f} s ago"
    elif ago < 3600:
        since = f"{ago / 60:.0f} min ago"
    elif ago < 86400:
        since = f"{ago / 3600:.1f} h ago"
    else:
        since = f"{ago / 86400:.1f} days ago"
    local = time.localtime(epoch)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S%z", local)
    shown = time.strftime("%H:%M:%S" if ago < 86400 else "%Y-%m-%d %H:%M", local)
    return f'<span class="when"><time datetime="{iso}">{shown}</time> ({since})</span>'


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)
