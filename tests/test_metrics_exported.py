"""What /.pkgcache/metrics exports, checked against what is written about
it: the latency histograms and disk gauges move, every exported metric is
in the README's list, and every metric the Grafana dashboard and the alert
rules query exists. One daemon for the module: a failing source, a source
that answers 500, a good one; a miss and a hit."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pkgcache.fetching.responses import Outcome
from pkgcache.fetching.upstream import Upstream
from pkgcache.store.paths import CacheKey
from tests.conftest import ROOT, Proxy, free_port
from tests.origin import Origin
from tests.scripted import Chunk, Gate, ScriptedTransport, head
from tests.test_upstream_inprocess import KEY, Received, live

README = ROOT / "README.md"
DASHBOARD = ROOT / "contrib" / "grafana" / "package-cache.json"
ALERTS = ROOT / "contrib" / "grafana" / "alerts.yml"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
MAX_SIZE = 10 * 1024**3
MIN_FREE = 1024**2


@dataclass
class Family:
    """One metric as a scrape shows it: its type and its samples."""

    kind: str
    help: str = ""
    labels: set[str] = field(default_factory=set)
    #: sample name -> [(labels, value)]
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)


_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(exposition: str) -> dict[str, Family]:
    """The families of a Prometheus text exposition by their exposed name
    (a counter with its ``_total``), ``_created`` series left out."""
    families: dict[str, Family] = {}
    for line in exposition.splitlines():
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            families.setdefault(name, Family("")).help = text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, Family("")).kind = kind
        elif match := _SAMPLE.match(line):
            name, labels = match.group(1), dict(_LABEL.findall(match.group(2) or ""))
            family = families.get(name) or families.get(_base(name))
            if family is None:
                continue
            family.labels |= set(labels) - {"le"}
            family.samples.setdefault(name, []).append((labels, float(match[3])))
    return {
        name: family
        for name, family in families.items()
        if not name.endswith("_created")
    }


def _base(sample: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


def value(family: Family, sample: str, **labels: str) -> float:
    """The sum of ``sample``'s values whose labels include ``labels``."""
    return sum(
        number
        for have, number in family.samples.get(sample, [])
        if labels.items() <= have.items()
    )


def readme_rows(families: dict[str, Family]) -> str:
    """The README table rows for ``families``, as a failing test shows them."""
    return "\n".join(
        f"| `{name}` | {family.kind} | "
        + (", ".join(f"`{label}`" for label in sorted(family.labels)) or "-")
        + f" | {family.help} |"
        for name, family in sorted(families.items())
    )


@dataclass
class Scraped:
    families: dict[str, Family]
    text: str
    cache: Path
    sources: dict[str, str]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    origin = Origin().start()
    tmp = tmp_path_factory.mktemp("exported")
    refused = f"http://127.0.0.1:{free_port()}/none"
    sources = {
        "refused": refused,
        "e500": origin.source("e500"),
        "ok": origin.source("ok"),
    }
    proxy = Proxy(
        tmp, list(sources.values()), max_size=MAX_SIZE, min_free=MIN_FREE
    ).start()
    try:
        assert proxy.request("/files/700/exported.tar").status == 200
        assert proxy.request("/files/700/exported.tar").headers["X-Package-Cache"] == (
            "hit"
        )
        text = proxy.request("/.pkgcache/metrics").body.decode()
        yield Scraped(parse(text), text, proxy.cache, sources)
    finally:
        proxy.stop()
        origin.stop()
        assert "Traceback" not in proxy.log(), proxy.log()


def test_request_duration_has_counts_for_a_miss_and_a_hit(scraped):
    duration = scraped.families["pkgcache_request_duration_seconds"]
    assert duration.kind == "histogram"
    assert duration.labels == {"repository", "result"}
    for result in ("miss", "hit"):
        count = value(
            duration,
            "pkgcache_request_duration_seconds_count",
            repository="default",
            result=result,
        )
        assert count == 1, (result, scraped.text)
        within_5_min = value(
            duration,
            "pkgcache_request_duration_seconds_bucket",
            repository="default",
            result=result,
            le="300.0",
        )
        assert within_5_min == 1


def test_first_byte_is_counted_per_source_for_answers_not_for_refused_connections(
    scraped,
):
    first_byte = scraped.families["pkgcache_upstream_first_byte_seconds"]
    assert first_byte.kind == "histogram"
    count = "pkgcache_upstream_first_byte_seconds_count"
    sources = scraped.sources
    # The miss asked every source in order.
    assert value(first_byte, count, repository="default", source=sources["ok"]) == 1
    assert value(first_byte, count, source=sources["e500"]) == 1
    assert value(first_byte, count, source=sources["refused"]) == 0
    fetches = scraped.families["pkgcache_upstream_fetches_total"]
    refused = value(
        fetches, "pkgcache_upstream_fetches_total", source=sources["refused"]
    )
    assert refused == 1


def test_disk_gauges_show_the_cache_file_system_and_the_bounds(scraped):
    stat = os.statvfs(scraped.cache)
    free = stat.f_bavail * stat.f_frsize
    shown = value(
        scraped.families["pkgcache_disk_free_bytes"], "pkgcache_disk_free_bytes"
    )
    # Other tests write beside this one: close, not equal.
    assert shown > 0 and abs(shown - free) < max(256 * 1024**2, free // 20)
    size = value(
        scraped.families["pkgcache_disk_size_bytes"], "pkgcache_disk_size_bytes"
    )
    assert size == stat.f_blocks * stat.f_frsize
    bound = scraped.families["pkgcache_disk_bound_bytes"]
    assert value(bound, "pkgcache_disk_bound_bytes", bound="max_size") == MAX_SIZE
    assert value(bound, "pkgcache_disk_bound_bytes", bound="min_free") == MIN_FREE


def readme_metrics() -> dict[str, tuple[str, set[str]]]:
    """The README's metric table: name -> (type, labels)."""
    row = re.compile(r"^\| `(pkgcache_\w+)` \| (\w+) \| ([^|]*) \|", re.MULTILINE)
    return {
        match[1]: (match[2], set(re.findall(r"`(\w+)`", match[3])))
        for match in row.finditer(README.read_text())
    }


def test_the_readme_lists_every_exported_metric_with_its_type_and_labels(scraped):
    listed = readme_metrics()
    missing = {n: f for n, f in scraped.families.items() if n not in listed}
    assert not missing, "add to README.md:\n" + readme_rows(missing)
    assert set(listed) <= set(scraped.families), "README lists metrics not exported"
    for name, family in scraped.families.items():
        kind, labels = listed[name]
        assert kind == family.kind, name
        if family.samples:
            assert labels == family.labels, name


def exported_names(families: dict[str, Family]) -> set[str]:
    """Every name a query may use: histograms with their suffixes."""
    names = set(families)
    for name, family in families.items():
        if family.kind == "histogram":
            names |= {name + suffix for suffix in HISTOGRAM_SUFFIXES}
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bpkgcache_\w+", expr))


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def alert_exprs() -> list[str]:
    """The ``expr:`` values of the hand-written rules file (one line each,
    single-quoted)."""
    exprs = []
    for line in ALERTS.read_text().splitlines():
        key, _, text = line.strip().partition(": ")
        if key == "expr":
            assert text.startswith("'") and text.endswith("'"), line
            exprs.append(text[1:-1].replace("''", "'"))
    return exprs


def test_the_dashboard_loads_and_queries_only_exported_metrics(scraped):
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for wanted in ("hit ratio", "bytes", "upstream errors", "latency", "first byte"):
        assert wanted in titles
    assert "disk" in titles
    exprs = dashboard_exprs(dashboard)
    used = set().union(*map(metric_names, exprs))
    assert {
        "pkgcache_request_duration_seconds_bucket",
        "pkgcache_upstream_first_byte_seconds_bucket",
        "pkgcache_disk_free_bytes",
        "pkgcache_disk_bound_bytes",
        "pkgcache_served_bytes_total",
    } <= used
    assert not used - exported_names(scraped.families)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_the_alert_rules_query_only_exported_metrics(scraped):
    exprs = alert_exprs()
    assert len(exprs) >= 4
    used = set().union(*map(metric_names, exprs))
    assert {
        "pkgcache_upstream_fetches_total",
        "pkgcache_disk_free_bytes",
        "pkgcache_disk_bound_bytes",
        "pkgcache_cache_bytes",
        "pkgcache_digest_mismatches_total",
    } <= used
    assert not used - exported_names(scraped.families)
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr


C = "http://c.test/mirror"
A = "http://a.test/mirror"
B = "http://b.test/mirror"


def test_an_attempt_tells_its_first_byte_when_the_answer_begins(tmp_path: Path):
    """C refuses the connection (no first byte), A answers 503, B's 200
    waits on a gate only the first-byte callback opens: observed as the
    head comes, not when the body ends."""
    path = KEY.url_path
    heard: list[tuple[CacheKey, str]] = []

    async def run() -> Outcome:
        gate = asyncio.Event()
        transport = ScriptedTransport(
            {
                A + path: [[head(503)]],
                B + path: [
                    [head(200, {"Content-Length": "3"}), Gate(gate), Chunk(b"abc")]
                ],
            }
        )
        upstream = Upstream(live(tmp_path, sources=[C, A, B]), transport)

        def first_byte(key: CacheKey, source: str, seconds: float) -> None:
            assert 0 <= seconds < 10
            heard.append((key, source))
            gate.set()

        upstream.on_first_byte = first_byte
        received = Received()
        fetch = upstream.fetch(KEY, "GET", received.on_head, received.on_chunk)
        result = await asyncio.wait_for(fetch, timeout=10)
        assert received.body == b"abc"
        return result.outcome

    assert asyncio.run(run()) is Outcome.COMPLETE
    assert heard == [(KEY, A), (KEY, B)]
