"""W10 (cargo half): ``cargo fetch`` of forty crates through package-cache,
cold (a fresh cache) and then warm (clean cargos through the same cache),
beside the bare origin (the same sparse index and ``.crate`` files asked
straight, no cache in the way) in the same run.

The origin is ``tests/cargorepo.py``'s: a sparse index (``config.json``
and one index file per crate) and the ``.crate`` files behind its ``dl``
template, served by ``tests/static_origin.py``, which counts the requests
that reach it, by path. The crates are of many sizes, from 4 KiB to
1 MiB (incompressible data in them), about 9 MiB in all; a scratch
project depends on every one.

- package-cache: a ``[[repository]]`` of kind ``cargo`` at ``/crates/``
  with ``fresh_for = "10m"``; cargo's ``[source.cache] registry =
  "sparse+http://127.0.0.1:PORT/crates/"``.
- bare origin: ``registry = "sparse+ORIGIN/index/"``.

Each run: a fresh package-cache and one clean cargo (its own
``CARGO_HOME`` and project, ``CARGO_NET_RETRY=0``) through it; then
``WARM_FETCHES`` rounds of one clean cargo straight from the origin and
one through the cache, so that what else the machine does falls on both
alike. Measured: the cold fetch's wall time, the medians of the warm and
bare ones, and the requests that reached the origin (from the cache's
start). "Per file" divides the cold requests by the number of different
paths asked for. Targets: one upstream request per file cold, none warm;
warm time about the bare origin's (cargo's own work dominates both).

Run by hand: ``python bench/w10_cargo.py [--runs N]`` prints its table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import MIB, Bench, Servers, free_port, spread_sizes, tests_module

CRATES = 40
WARM_FETCHES = 5
SMALLEST, LARGEST = 4 * 1024, 1 * MIB
START_TIMEOUT = 30

PC_CONF = """\
cache = "{folder}/cache"
host = "127.0.0.1"
port = {port}
verbose = 1

[[repository]]
name = "crates"
prefix = "/crates/"
kind = "cargo"
sources = ["{index}"]
file_sources = ["{dl}"]
fresh_for = "10m"
"""


@dataclass
class Run:
    cold: float = 0.0
    warms: list[float] = field(default_factory=list)
    bares: list[float] = field(default_factory=list)
    cold_requests: Counter[str] = field(default_factory=Counter)
    warm_requests: int = 0
    #: Requests of one bare cargo: the files cargo needs.
    needed: int = 0

    @property
    def warm(self) -> float:
        return statistics.median(self.warms)

    @property
    def bare(self) -> float:
        return statistics.median(self.bares)


def run(bench: Bench) -> None:
    w10 = W10(bench.s)
    try:
        runs = [w10.once(turn) for turn in range(bench.runs)]
    finally:
        w10.close()
    record = bench.record
    record(
        f"W10 cargo fetch of {CRATES} crates (cold, then warm)",
        "warm time: package-cache / bare origin",
        [r.warm / r.bare for r in runs],
        "~1",
    )
    record(
        "W10",
        "cold time: package-cache / bare origin",
        [r.cold / r.bare for r in runs],
        "-",
    )
    record(
        "W10",
        "cold upstream requests per file asked upstream",
        [r.cold_requests.total() / max(1, len(r.cold_requests)) for r in runs],
        "1",
    )
    record(
        "W10",
        "upstream requests cold / warm (all warm cargos)",
        [f"{r.cold_requests.total()} / {r.warm_requests}" for r in runs],
        "81 / 0",
    )
    record(
        "W10",
        "requests of a bare cargo (the files cargo needs)",
        [float(r.needed) for r in runs],
        "-",
        "{:.0f}",
    )
    record("W10", "cold seconds", [r.cold for r in runs], "-")
    record("W10", "warm seconds", [r.warm for r in runs], "-")
    record("W10", "bare origin seconds", [r.bare for r in runs], "-")


class W10:
    """The origin registry, the cache under test and the cargos."""

    def __init__(self, servers: Servers) -> None:
        self.s = servers
        self.folder = servers.work / "w10"
        self.folder.mkdir()
        cargorepo = tests_module("cargorepo")
        if cargorepo.find_cargo() is None:
            raise RuntimeError("bench: W10 needs cargo 1.68 or newer (rustup)")
        self.cargorepo = cargorepo
        self.registry = cargorepo.SparseRegistry(self.folder / "registry").start()
        self.names = [f"w10crate{n:02d}" for n in range(CRATES)]
        self.crates = [
            cargorepo.make_crate(name, "1.0.0", payload=size)
            for name, size in zip(
                self.names, spread_sizes(SMALLEST, LARGEST, CRATES), strict=True
            )
        ]
        for crate in self.crates:
            self.registry.publish(crate)
        self.seq = 0

    def close(self) -> None:
        self.registry.stop()

    def requests(self) -> Counter[str]:
        return Counter(self.registry.requests)

    def fetch(self, registry: str) -> float:
        """One clean ``cargo fetch`` of every crate; its wall time."""
        self.seq += 1
        root = self.folder / f"cargo-{self.seq}"
        cargo: Any = self.cargorepo.CargoClient(
            root, registry, dict.fromkeys(self.names, "1")
        )
        started = time.monotonic()
        done = cargo.fetch()
        seconds = time.monotonic() - started
        if done.returncode != 0:
            said = done.stderr[-3000:]
            raise RuntimeError(
                f"bench: W10: cargo fetch from {registry} failed:\n{said}"
            )
        fetched = {
            path.name: path.stat().st_size
            for path in (cargo.home / "registry" / "cache").rglob("*.crate")
        }
        expected = {crate.file: len(crate.data) for crate in self.crates}
        if fetched != expected:
            raise RuntimeError(f"bench: W10: cargo from {registry} got other files")
        shutil.rmtree(root)
        return seconds

    def once(self, turn: int) -> Run:
        result = Run()
        folder = self.folder / f"package-cache-{turn}"
        folder.mkdir()
        port = free_port()
        conf = folder / "package-cache.conf"
        conf.write_text(
            PC_CONF.format(
                folder=folder,
                port=port,
                index=self.registry.index_url,
                dl=self.registry.dl_template,
            )
        )
        before = self.requests()
        process = self.s.start(
            [sys.executable, "-m", "pkgcache", "--config", str(conf)],
            port,
            timeout=START_TIMEOUT,
        )
        cache = f"http://127.0.0.1:{port}/crates/"
        bare = self.registry.index_url + "/"
        try:
            result.cold = self.fetch(cache)
            result.cold_requests = self.requests() - before
            for n in range(WARM_FETCHES):
                before = self.requests()
                result.bares.append(self.fetch(bare))
                if n == 0:
                    result.needed = (self.requests() - before).total()
                before = self.requests()
                result.warms.append(self.fetch(cache))
                result.warm_requests += (self.requests() - before).total()
        finally:
            process.terminate()
            process.wait(15)
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"bench: W10: cold {result.cold:.2f} s, warm {result.warm:.2f} s, bare "
            f"origin {result.bare:.2f} s; upstream requests cold "
            f"{result.cold_requests.total()} for {len(result.cold_requests)} paths, "
            f"warm {result.warm_requests}",
            file=sys.stderr,
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pc-bench-w10-") as tmp:
        work = Path(tmp)
        servers = Servers(work, work)
        try:
            bench = Bench(servers, args.runs, quick=False)
            run(bench)
        finally:
            servers.stop_all()
    print(bench.table())


if __name__ == "__main__":
    main()
