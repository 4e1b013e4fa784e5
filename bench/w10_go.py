"""W10 (go half): ``go mod download`` of forty modules through
package-cache, beside the bare origin, in the same run.

The modules are ``tests/gorepo.py``'s: a static GOPROXY folder and a
checksum database folder served by one counting origin
(``tests/static_origin.py``), forty modules of one version each, their
zips from 8 KiB to 2 MiB (evenly on a log scale), and a main module that
requires them all. Every client is Debian's go with a scratch GOPATH,
module cache and build cache, ``GOSUMDB=off`` and ``GOFLAGS=-mod=mod``.

- package-cache: a ``[[repository]]`` of kind ``go`` at ``/go/`` with
  ``sumdb`` set, so every ``.zip`` and ``.mod`` is checked against the
  ``h1:`` of its lookup record (fetched through the cache) before it is
  stored: the cold run pays for the checks.
- the bare origin: ``GOPROXY`` straight at the static folder.

Each run: a fresh package-cache and one clean ``go mod download``
through it (cold); then ``WARM`` rounds of one clean client straight
from the origin and one through the cache. Measured: the cold time, the
median warm times, their ratio (target: the warm cache no slower than
the bare origin, 1.0 or less within noise), and the upstream requests
of the cold run per file it asked for (target: 1; the lookup records
count as files).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import Bench, free_port, spread_sizes, tests_module

MODULES = 40
WARM = 5
SMALLEST, LARGEST = 8 * 1024, 2 * 1024 * 1024
START_TIMEOUT = 30

PC_CONF = """\
cache = "{folder}/cache"
host = "127.0.0.1"
port = {port}
verbose = 1

[[repository]]
name = "go"
prefix = "/go/"
kind = "go"
sources = ["{origin}/proxy"]
sumdb = "{origin}/sumdb"
fresh_for = "10m"
"""


@dataclass
class Run:
    cold: float = 0.0
    cold_requests: Counter[str] = field(default_factory=Counter)
    warms: list[float] = field(default_factory=list)
    bares: list[float] = field(default_factory=list)
    warm_requests: int = 0

    @property
    def per_file(self) -> float:
        return self.cold_requests.total() / max(1, len(self.cold_requests))


def run(bench: Bench) -> None:
    w10 = W10(bench)
    try:
        w10.run()
    finally:
        w10.close()


class W10:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.folder = bench.s.work / "w10go"
        self.folder.mkdir()
        gorepo = self.gorepo = tests_module("gorepo")
        if gorepo.missing_go():
            raise RuntimeError("bench: W10: needs go (Debian: golang-go)")
        repo = gorepo.GoRepo(self.folder / "repo")
        self.paths = [f"example.com/w10/mod{n:02d}" for n in range(MODULES)]
        for path, size in zip(
            self.paths, spread_sizes(SMALLEST, LARGEST, MODULES), strict=True
        ):
            name = path.rsplit("/", 1)[1]
            payload = bytes(range(256)) * (size // 256 + 1)
            repo.publish(
                gorepo.Module(
                    path,
                    "v1.0.0",
                    {
                        f"{name}.go": f"package {name}\n".encode(),
                        "data": payload[:size],
                    },
                )
            )
        self.origin = tests_module("static_origin").StaticOrigin(repo.root).start()
        self.seq = 0
        self.process: subprocess.Popen[bytes] | None = None

    def close(self) -> None:
        self.stop_cache()
        self.origin.stop()

    def start_cache(self, folder: Path) -> str:
        port = free_port()
        conf = folder / "package-cache.conf"
        conf.write_text(
            PC_CONF.format(folder=folder, port=port, origin=self.origin.url)
        )
        self.process = self.bench.s.start(
            [sys.executable, "-m", "pkgcache", "--config", str(conf)],
            port,
            timeout=START_TIMEOUT,
        )
        return f"http://127.0.0.1:{port}/go"

    def stop_cache(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def download(self, proxy_url: str) -> float:
        """One clean ``go mod download`` of every module; its wall time."""
        self.seq += 1
        home = self.folder / f"client-{self.seq}"
        requires = dict.fromkeys(self.paths, "v1.0.0")
        app = self.gorepo.write_app(
            home / "app", requires, "package main\n\nfunc main() {}\n"
        )
        env: dict[str, Any] = self.gorepo.go_env(home, proxy_url)
        started = time.monotonic()
        self.gorepo.go(["mod", "download"], app, env)
        seconds = time.monotonic() - started
        got = list(
            (home / "modcache/cache/download/example.com/w10").glob("*/@v/v1.0.0.zip")
        )
        if len(got) != MODULES:
            raise RuntimeError(f"bench: W10: {proxy_url} gave {len(got)} zips")
        shutil.rmtree(home)
        return seconds

    def once(self, turn: int) -> Run:
        result = Run()
        folder = self.folder / f"cache-{turn}"
        folder.mkdir()
        try:
            before = Counter(self.origin.requests)
            url = self.start_cache(folder)
            result.cold = self.download(url)
            result.cold_requests = Counter(self.origin.requests) - before
            before = Counter(self.origin.requests)
            for _ in range(WARM):
                result.bares.append(self.download(self.origin.url + "/proxy"))
                mark = Counter(self.origin.requests)
                result.warms.append(self.download(url))
                result.warm_requests += (Counter(self.origin.requests) - mark).total()
        finally:
            self.stop_cache()
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"bench: W10 go: cold {result.cold:.2f} s, warm "
            f"{statistics.median(result.warms):.2f} s, bare origin "
            f"{statistics.median(result.bares):.2f} s; cold upstream requests "
            f"{result.cold_requests.total()} for {len(result.cold_requests)} files, "
            f"warm {result.warm_requests}",
            file=sys.stderr,
        )
        return result

    def run(self) -> None:
        runs = [self.once(turn) for turn in range(self.bench.runs)]
        record = self.bench.record
        record(
            f"W10 go mod download of {MODULES} modules (cold, then warm)",
            "cold time, package-cache (s)",
            [r.cold for r in runs],
            "-",
        )
        record(
            "W10 go",
            "cold time: package-cache / bare origin",
            [r.cold / statistics.median(r.bares) for r in runs],
            "-",
        )
        record(
            "W10 go",
            "warm time: package-cache / bare origin",
            [statistics.median(r.warms) / statistics.median(r.bares) for r in runs],
            "<= 1",
        )
        record(
            "W10 go",
            "cold upstream requests per file",
            [r.per_file for r in runs],
            "1",
        )
        record(
            "W10 go",
            "warm upstream requests",
            [float(r.warm_requests) for r in runs],
            "0",
            "{:.0f}",
        )
