"""W11 status page: what drawing ``/.pkgcache/status`` costs the IOLoop
with 100 repositories (two sources each), a full history (every minute
of the last hour and every hour of the last 7 days counted in every
repository), a full trouble list and full top-file tables. In process:
``snapshot`` then ``render_html``, as the handler does, timed 20 times a
run in CPU time of the process (on a loaded machine, wall time measures
the neighbours); the JSON twin and the history file's size are measured
beside it, and ``sum(range(10**6))`` for scale (about 12 ms on an idle
core of an ordinary x86 machine).

Not in ``bench.py``'s WORKLOADS yet; run on its own with
``python bench/w11_status.py`` from the repository root.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pkgcache.clock import ManualClock
from pkgcache.observe.board import StatusBoard
from pkgcache.observe.history import Series
from pkgcache.observe.historyfile import FILE_NAME, HistoryFile
from pkgcache.observe.metrics import Metrics
from pkgcache.observe.results import Result
from pkgcache.observe.snapshot import snapshot
from pkgcache.observe.statuspage import render_html
from pkgcache.settings import RepositorySettings, Settings
from pkgcache.store.usage import CacheUsage

REPOSITORIES = 100
RENDERS = 20


class _NoDownloads:
    def active(self) -> list[Any]:
        return []


def _filled(clock: ManualClock, settings: Settings) -> StatusBoard:
    board = StatusBoard(clock)
    names = [repository.name for repository in settings.repositories]
    step = 0
    start = clock.now()
    # Every hour of the week, then every minute of the last hour.
    moments = [start + h * 3600 for h in range(7 * 24 - 1)]
    moments += [start + (7 * 24 - 1) * 3600 + m * 60 for m in range(60)]
    for moment in moments:
        for name in names:
            series = board.history.repositories.setdefault(name, Series())
            for ring in (series.minutes, series.hours):
                ring.add(
                    moment,
                    *[(c, 1000 + (step * 7919 + c * 104729) % 9000) for c in range(9)],
                    (9, 10**9 + step * 7_654_321),
                    (10, 10**9 + step * 1_234_567),
                    (11, 9),
                )
                step += 1
    clock.advance(moments[-1] - start)
    now = clock.now()
    for repository in settings.repositories:
        for source in repository.sources:
            for i in range(200):
                outcome = "failed" if i % 7 == 0 else "complete"
                board.sources.attempt(now, source, outcome, "HTTP 503", i / 1000)
    for i in range(60):
        board.trouble.add(now, "not found upstream", f"/repo/<{i}>", "10.0.0.1", "404")
    for i in range(5000):
        board.top.served(now, f"/repo{i % 100}/pool/file-{i}.deb", i * 1000)
    for _ in range(50):
        board.history.record(now, names[0], Result.HIT, 1000)
    return board


def measure() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pc-w11-") as folder:
        repositories = tuple(
            RepositorySettings(
                name=f"repo{i}",
                prefix=f"/repo{i}/",
                sources=(f"http://mirror{i}.example/", f"http://user:pw@m{i}.example/"),
            )
            for i in range(REPOSITORIES)
        )
        settings = Settings(cache=folder, repositories=repositories)
        clock = ManualClock(1_700_000_040.0)
        board = _filled(clock, settings)
        metrics, usage = Metrics(), CacheUsage()

        def status() -> dict[str, Any]:
            return snapshot(
                metrics,
                usage,
                _NoDownloads(),  # type: ignore[arg-type]
                settings,
                clock,
                clock.now() - 86400,
                board,
            )

        began = time.process_time()
        sum(range(10**6))
        reference = time.process_time() - began
        pages = []
        for _ in range(RENDERS):
            began = time.process_time()
            page = render_html(status())
            pages.append(time.process_time() - began)
        documents = []
        for _ in range(5):
            began = time.process_time()
            text = json.dumps(status(), separators=(",", ":"))
            documents.append(time.process_time() - began)
        names = [repository.name for repository in repositories]
        keeper = HistoryFile(folder, board.history, clock, lambda: names)
        began = time.process_time()
        parts = board.history.parts(names)
        copied = time.process_time() - began
        keeper.save()
        size = (Path(folder) / FILE_NAME).stat().st_size
        assert json.loads(gzip.decompress((Path(folder) / FILE_NAME).read_bytes()))
        assert len(parts) == REPOSITORIES + 1
        return {
            "render_ms": statistics.median(pages) * 1000,
            "reference_ms": reference * 1000,
            "html_kib": len(page) / 1024,
            "json_ms": statistics.median(documents) * 1000,
            "json_kib": len(text) / 1024,
            "history_kib": size / 1024,
            "history_copy_ms": copied * 1000,
        }


def run(bench: Any) -> None:
    cols = bench.repeat(lambda: list(measure().values()))
    bench.record(
        "W11 status page",
        "ms of the IOLoop per page, 100 repositories, full history",
        cols[0],
        "< 20",
        "{:.1f}",
    )
    bench.record(
        "W11", "ms of sum(range(10**6)) beside it, for scale", cols[1], "-", "{:.1f}"
    )
    bench.record("W11", "page size KiB", cols[2], "-", "{:.0f}")
    bench.record("W11", "ms per status.json", cols[3], "-", "{:.1f}")
    bench.record("W11", "status.json KiB", cols[4], "-", "{:.0f}")
    bench.record("W11", "history file KiB", cols[5], "< 1024", "{:.0f}")
    bench.record("W11", "ms of the IOLoop per history save", cols[6], "-", "{:.1f}")


if __name__ == "__main__":
    for name, value in measure().items():
        print(f"{name}: {value:.1f}")
