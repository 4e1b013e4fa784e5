"""The status page an admin runs the cache from: its recorders in process
(history buckets, roll-over, bounded buffers, the history file), and the
page of a real daemon after a scripted sequence, loaded in headless
Chromium (sections, plots, no console errors, a screenshot)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkgcache.clock import ManualClock
from pkgcache.observe.history import CATEGORIES, History, category_of
from pkgcache.observe.historyfile import FILE_NAME, LIMIT, HistoryFile
from pkgcache.observe.rates import Rates
from pkgcache.observe.results import Result
from pkgcache.observe.sources import SourceBoard
from pkgcache.observe.top import TopFiles
from pkgcache.observe.trouble import Trouble
from tests.conftest import Proxy, free_port, wait_until
from tests.static_origin import StaticOrigin

CHROMIUM = "/usr/bin/chromium"
HOUR = 3600
DAY = 86400
#: A whole minute, so buckets start where the tests expect.
START = 1_700_000_040.0


def test_every_result_counts_in_one_of_the_nine_categories():
    assert len(CATEGORIES) == 9
    for result in Result:
        assert 0 <= category_of(result) < 9
    assert CATEGORIES[category_of(Result.REDIRECT)] == "hit"
    assert CATEGORIES[category_of(Result.FORBIDDEN)] == "refused"
    assert CATEGORIES[category_of(Result.JOINED)] == "joined"


def test_history_buckets_by_minute_and_hour_and_rolls_over():
    clock = ManualClock(START)
    history = History()
    history.record(clock.now(), "debian", Result.MISS, 1000)
    history.record(clock.now(), "debian", Result.HIT, 1000)
    clock.advance(61)
    history.record(clock.now(), "debian", Result.HIT, 500)
    history.record(clock.now(), "-", Result.REFUSED, 0)
    series = history.series("debian")
    assert series is not None
    minutes = series.minutes.window(clock.now())
    assert len(minutes) == 60
    assert minutes[-2] is not None and minutes[-1] is not None
    assert minutes[-2][CATEGORIES.index("miss")] == 1
    assert minutes[-2][9:] == [1000, 1000, 2]  # from cache, upstream; requests
    assert minutes[-1][CATEGORIES.index("hit")] == 1
    assert series.hours.totals(clock.now())[CATEGORIES.index("hit")] == 2
    # Requests under no repository count in the total only.
    assert history.total.minutes.totals(clock.now())[CATEGORIES.index("refused")] == 1
    assert list(history.names()) == ["debian"]
    # An hour on, the minutes have rolled over; the hours still have it.
    clock.advance(HOUR)
    assert all(row is None for row in series.minutes.window(clock.now()))
    assert series.hours.totals(clock.now())[CATEGORIES.index("miss")] == 1
    # A bucket's slot reused a week on starts from zero.
    clock.advance(7 * DAY - HOUR)
    history.record(clock.now(), "debian", Result.PASS, 7)
    totals = series.hours.totals(clock.now())
    assert totals[CATEGORIES.index("hit")] == 0
    assert totals[CATEGORIES.index("pass")] == 1 and totals[10] == 7


def test_the_running_sums_equal_the_window_whatever_the_steps():
    clock = ManualClock(START)
    history = History()
    results = list(Result)
    for step in range(3000):
        clock.advance((step * 37) % 400 + (7200 if step % 500 == 0 else 0))
        history.record(clock.now(), "r", results[step % len(results)], step)
        series = history.series("r")
        assert series is not None
        for ring in (series.minutes, series.hours):
            rows = [row for row in ring.window(clock.now()) if row is not None]
            expected = [sum(column) for column in zip(*rows, strict=True)]
            assert ring.totals(clock.now()) == expected


def test_rates_are_over_the_last_minute():
    clock = ManualClock(START)
    rates = Rates()
    for _ in range(30):
        rates.request(clock.monotonic(), 2000)
    rates.received(clock.monotonic(), 6000)
    clock.advance(1)
    assert rates.per_second(clock.monotonic()) == {
        "requests": 0.5,
        "bytes_out": 1000,
        "bytes_in": 100,
    }
    clock.advance(61)
    assert rates.per_second(clock.monotonic())["requests"] == 0


def test_sources_keep_a_bounded_sample_and_stand_out_when_failing():
    clock = ManualClock(START)
    board = SourceBoard(kept=3)
    for i in range(500):
        board.attempt(clock.now(), "http://a", "complete", "HTTP 200", i / 1000)
    record = board.sources["http://a"]
    assert len(record.first_byte) == 200
    summary = board.summary("http://a", clock.now())
    assert summary["first_byte_mean"] == pytest.approx(0.3995)
    assert summary["first_byte_p95"] == 0.489
    assert summary["error_rate"] == 0 and not summary["failing"]
    board.attempt(clock.now(), "http://a", "failed", "connection refused", None)
    summary = board.summary("http://a", clock.now())
    assert summary["failing"] and summary["last_failure_reason"] == "connection refused"
    board.attempt(clock.now(), "http://a", "not_found", "HTTP 404", 0.1)
    assert not board.summary("http://a", clock.now())["failing"]
    clock.advance(HOUR)
    assert board.summary("http://a", clock.now())["attempts_last_hour"] == 0
    for name in ("b", "c", "d"):
        board.attempt(clock.now(), f"http://{name}", "complete", "", None)
    assert list(board.sources) == ["http://b", "http://c", "http://d"]


def test_trouble_keeps_the_last_fifty_and_hides_passwords():
    trouble = Trouble()
    for i in range(80):
        trouble.add(START + i, "refused", f"/p{i}" + "x" * 1000, "10.0.0.1", "HTTP 400")
    latest = trouble.latest()
    assert len(latest) == 50 and latest[0].at == START + 79
    assert len(latest[0].path) == 300
    trouble.add(START, "upstream failure", "/f", "-", "from https://u:secret@m/: 500")
    assert "secret" not in trouble.latest()[0].detail


def test_top_files_are_bounded_and_cover_the_last_day():
    clock = ManualClock(START)
    top = TopFiles(kept=100, largest_kept=10)
    for i in range(1000):
        top.served(clock.now(), f"/once/{i}", i)
    for _ in range(5):
        top.served(clock.now(), "/popular", 10)
    top.served(clock.now(), "/huge", 10**9)
    assert top.most_requested(clock.now(), 1) == [("/popular", 5)]
    assert top.largest(clock.now(), 2)[0] == ("/huge", 10**9)
    half = top._current
    assert len(half.counts) <= 100 and len(half.sizes) <= 10
    clock.advance(DAY / 2)
    top.served(clock.now(), "/later", 1)
    assert ("/popular", 5) in top.most_requested(clock.now())
    clock.advance(DAY)
    assert top.most_requested(clock.now()) == []


def _full_history(clock: ManualClock, repositories: int) -> History:
    """Every bucket of every repository holding large numbers."""
    history = History()
    step = 0
    for minute in range(7 * 24 * 60):
        if minute < 7 * 24 * 60 - 60 and minute % 60:
            clock.advance(60)
            continue
        for index in range(repositories):
            series = history.repositories.setdefault(
                f"repo{index}", type(history.total)()
            )
            for ring in (series.minutes, series.hours):
                ring.add(
                    clock.now(),
                    *[(c, 1000 + (step * 7919 + c * 104729) % 9000) for c in range(9)],
                    (9, 10**9 + step * 7_654_321),
                    (10, 10**9 + step * 1_234_567),
                    (11, 9),
                )
                step += 1
        clock.advance(60)
    return history


def test_history_file_round_trip_and_stays_small_with_100_repositories(tmp_path):
    clock = ManualClock(START)
    history = _full_history(clock, 100)
    names = [f"repo{i}" for i in range(100)]
    keeper = HistoryFile(str(tmp_path), history, clock, lambda: names)
    keeper.save()
    path = tmp_path / FILE_NAME
    assert path.stat().st_size < LIMIT
    restored = History()
    HistoryFile(str(tmp_path), restored, clock, lambda: names[:50]).load()
    assert sorted(restored.names()) == sorted(names[:50])
    for name in ("repo0", "repo49"):
        before = history.repositories[name]
        after = restored.repositories[name]
        assert after.hours.window(clock.now()) == before.hours.window(clock.now())
        assert after.minutes.window(clock.now()) == before.minutes.window(clock.now())


@pytest.mark.parametrize(
    "content",
    [
        b"not gzip at all",
        gzip.compress(b"{not json"),
        gzip.compress(b'{"version": 1, "repositories": {"a": {"hours": [[1, -5]]}}}'),
        gzip.compress(b"[1, 2, 3]"),
        os.urandom(LIMIT + 10),
    ],
    ids=["garbage", "bad-json", "bad-bucket", "not-a-history", "oversized"],
)
def test_a_corrupt_or_oversized_history_file_is_logged_and_replaced(
    tmp_path, caplog, content
):
    path = tmp_path / FILE_NAME
    path.write_bytes(content)
    clock = ManualClock(START)
    history = History()
    keeper = HistoryFile(str(tmp_path), history, clock, lambda: ["a"])
    with caplog.at_level(logging.WARNING, logger="pkgcache.status"):
        keeper.load()
    lines = [r for r in caplog.records if r.name == "pkgcache.status"]
    assert len(lines) == 1 and "starting a new history" in lines[0].getMessage()
    assert list(history.names()) == []
    history.record(clock.now(), "a", Result.HIT, 1)
    keeper.save()
    data = json.loads(gzip.decompress(path.read_bytes()))
    assert list(data["repositories"]) == ["a"]


# A daemon, a scripted sequence, the page in a browser ---------------------

GOOD = b"the good index\n" * 100
BAD = bytes(reversed(GOOD))
BY_HASH = f"dists/x/main/by-hash/SHA256/{hashlib.sha256(GOOD).hexdigest()}"
SMALL = b"a" * 3000
BIG = bytes(range(256)) * 2000


def _get(proxy: Proxy, path: str) -> tuple[int, str]:
    """GET ``path`` as sent (no quoting), the body read even if cut."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        with contextlib.suppress(http.client.IncompleteRead):
            response.read()
        return response.status, response.headers.get("X-Package-Cache", "")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    """Two repositories: "alpha" whose first source is a closed port, and
    "beta" whose mirror has a corrupt by-hash file; then misses, hits, a
    digest mismatch, a 404 (with markup in its path) and a refused path."""
    tmp = tmp_path_factory.mktemp("status")
    mirror_root = tmp / "mirror"
    for name, body in {
        "pool/a.deb": SMALL,
        "pool/big.iso": BIG,
        BY_HASH: BAD,
    }.items():
        (mirror_root / name).parent.mkdir(parents=True, exist_ok=True)
        (mirror_root / name).write_bytes(body)
    mirror = StaticOrigin(mirror_root).start()
    closed = f"http://user:hunter2@127.0.0.1:{free_port()}"
    proxy = Proxy(
        tmp,
        [],
        repository=[
            {"name": "alpha", "prefix": "/alpha/", "sources": [closed, mirror.url]},
            {"name": "beta", "prefix": "/beta/", "sources": [mirror.url]},
        ],
        max_size="1G",
    ).start()
    try:
        assert _get(proxy, "/alpha/pool/a.deb") == (200, "miss")
        assert _get(proxy, "/alpha/pool/big.iso") == (200, "miss")
        for path in ("/alpha/pool/a.deb", "/alpha/pool/a.deb", "/alpha/pool/big.iso"):
            assert _get(proxy, path) == (200, "hit")
        _get(proxy, f"/beta/{BY_HASH}")
        assert _get(proxy, "/beta/pool/<b>gone</b>.deb")[0] == 404
        assert _get(proxy, "/alpha/.hidden")[0] == 404
        assert wait_until(lambda: "digest mismatch" in proxy.log())
        yield proxy, tmp
    finally:
        proxy.stop()
        mirror.stop()
        assert "Traceback" not in proxy.log(), proxy.log()


def _status(proxy: Proxy) -> dict[str, Any]:
    return json.loads(proxy.request("/.pkgcache/status.json").body)


def test_status_json_carries_every_section(scripted):
    proxy, _tmp = scripted
    status = _status(proxy)
    now = status["now"]
    assert now["uptime"].endswith(" s") and now["started_iso"].endswith("+00:00")
    assert now["requests_per_second"] > 0 and now["bytes_out_per_second"] > 0
    assert now["disk"]["free"] > 0 and now["disk"]["max_size"] == 1024**3
    assert now["last_eviction"] is not None
    alpha = status["history"]["repositories"]["alpha"]["last_hour"]
    assert alpha["requests"]["miss"] == 2 and alpha["requests"]["hit"] == 3
    assert alpha["bytes_from_cache"] == 2 * len(SMALL) + len(BIG)
    assert alpha["saving"] == pytest.approx(
        (2 * len(SMALL) + len(BIG)) / (3 * len(SMALL) + 2 * len(BIG)), abs=0.001
    )
    assert status["history"]["total"]["last_hour"]["requests"]["refused"] == 1
    health = {(s["repository"], s["role"]): s for s in status["source_health"]}
    sources = [s for s in status["source_health"] if s["repository"] == "alpha"]
    closed, working = sources
    assert "hunter2" not in json.dumps(status)
    assert closed["failing"] and closed["last_failure_reason"]
    assert closed["source"].startswith("http://user:***@")
    assert not working["failing"] and working["first_byte_p95"] is not None
    assert ("beta", "source") in health
    kinds = {t["kind"] for t in status["trouble"]}
    assert kinds >= {"upstream failure", "digest mismatch", "not found upstream"}
    assert "refused" in kinds
    top = status["top"]
    assert top["most_requested"][0] == {"path": "/alpha/pool/a.deb", "requests": 3}
    assert top["largest"][0] == {"path": "/alpha/pool/big.iso", "bytes": len(BIG)}


def _chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ("Uncaught" in line or "ERROR:CONSOLE" in line or "CONSOLE(" in line)
        and ".pkgcache" in line
    ]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
def test_the_page_in_a_browser_shows_every_section(scripted):
    proxy, tmp = scripted
    result = _chromium(tmp, proxy.url + "/.pkgcache/status", "--dump-dom")
    assert result.returncode == 0, result.stderr
    dom = result.stdout
    assert _console_errors(result.stderr) == []
    headings = re.findall(r"<h2>([^<]*)</h2>", dom)
    assert headings == [
        "Now",
        "History",
        "Repositories",
        "Sources",
        "Recent trouble",
        "Top files of the last day",
    ]
    sections = dict(zip(headings, re.split(r"<h2>[^<]*</h2>", dom)[1:], strict=True))
    assert "since " in sections["Now"] and "req/s" in sections["Now"]
    plots = re.findall(r'<svg class="plot".*?</svg>', sections["History"], re.S)
    assert len(plots) == 4
    assert all(re.search(r"<rect |<circle ", plot) for plot in plots)
    assert re.search(r'<polyline [^>]*points="[\d., ]+"', plots[1])
    assert ">alpha<" in sections["Repositories"] and "hit</span> 3" in dom
    failing = re.findall(r'<tr class="failing">.*?</tr>', sections["Sources"], re.S)
    assert len(failing) == 1 and "✖ failing" in failing[0]
    assert "user:***@" in failing[0] and "hunter2" not in dom
    trouble = sections["Recent trouble"]
    for kind in (
        "upstream failure",
        "digest mismatch",
        "not found upstream",
        "refused",
    ):
        assert kind in trouble, kind
    # The path a client sent is shown as text, never as markup.
    assert "&lt;b&gt;gone&lt;/b&gt;" in trouble and "<b>gone" not in dom
    assert "/alpha/pool/a.deb" in sections["Top files of the last day"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
def test_a_screenshot_of_the_page(scripted):
    proxy, tmp = scripted
    picture = tmp / "status.png"
    result = _chromium(
        tmp,
        proxy.url + "/.pkgcache/status",
        f"--screenshot={picture}",
        "--window-size=1280,2400",
    )
    assert result.returncode == 0, result.stderr
    assert _console_errors(result.stderr) == []
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("PKGCACHE_STATUS_SCREENSHOT")
    if keep:
        shutil.copy(picture, keep)


def test_history_survives_a_restart(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")])
    for _ in range(3):
        proxy.request("/files/700/kept.tar")
    assert proxy.stop() == 0
    assert (proxy.cache / FILE_NAME).exists()
    proxy.start()
    status = _status(proxy)
    hour = status["history"]["repositories"]["default"]["last_hour"]
    assert hour["requests"]["miss"] == 1 and hour["requests"]["hit"] == 2
    assert hour["bytes_from_cache"] == 1400
    assert b"hit</span> 2" in proxy.request("/.pkgcache/status").body
    # Not a cached file: the cache still counts only the one it holds.
    assert wait_until(lambda: _status(proxy)["cache"]["files"] == 1)
