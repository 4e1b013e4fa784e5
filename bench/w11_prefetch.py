"""W11 prefetch: twenty clients run ``apt-get update`` and ``apt-get
download`` of a set of packages just after the origin published new
versions of half of them, through a package-cache that prefetched (one
pass after the publication) and through one that did not, in one run.

The repository (``tests/aptrepo.py``: ten packages with 1 MiB of payload
each) is served by an nginx of its own (``w7_apt_update.Origin``) paced
at 1 MiB/s a connection, like a mirror across the internet; its access
log tells what reached the origin while the clients waited. Both
caches serve it as a ``[[repository]]`` of kind ``debian``; each was
warmed by one client that downloaded every package. Each run publishes
new versions of half the packages, moves both caches' clocks past
``fresh_for`` (``PKGCACHE_CLOCK_OFFSET_FILE``, as the tests do), starts a
pass on the prefetching cache (``POST /.pkgcache/prefetch``) and waits for
it, then lets twenty clients loose on each cache in turn. Measured: the
time until all twenty are done, as a ratio of prefetch on to off, and the
upstream requests made while the clients waited (target 0 with prefetch).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runner import Bench, free_port
from w7_apt_update import Origin, _aptrepo

CLIENTS = 20
PACKAGES = 10
PAYLOAD = 1024 * 1024
FRESH_FOR = 600
#: The origin's pace per connection (nginx ``limit_rate``).
RATE = "1m"

PC_CONF = """\
cache = "{folder}/cache"
host = "127.0.0.1"
port = {port}
verbose = 1

[[repository]]
name = "debian"
prefix = "/debian/"
kind = "debian"
sources = ["http://127.0.0.1:{origin}/debian"]
fresh_for = "{fresh}s"
prefetch = "{prefetch}"
"""


class Cache:
    """One package-cache of the workload, with a clock the bench moves."""

    def __init__(self, bench: Bench, folder: Path, origin: int, prefetch: str) -> None:
        folder.mkdir(parents=True)
        self.port = free_port()
        self.clock = folder / "clock"
        self.offset = 0.0
        conf = folder / "package-cache.conf"
        conf.write_text(
            PC_CONF.format(
                folder=folder,
                port=self.port,
                origin=origin,
                fresh=FRESH_FOR,
                prefetch=prefetch,
            )
        )
        env = {**os.environ, "PKGCACHE_CLOCK_OFFSET_FILE": str(self.clock)}
        bench.s.start(
            [sys.executable, "-m", "pkgcache", "--config", str(conf)], self.port, env
        )

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        temporary = self.clock.with_suffix(".new")
        temporary.write_text(repr(self.offset))
        os.replace(temporary, self.clock)
        time.sleep(0.05)  # the daemon reads the file when its mtime moves

    def request(self, method: str, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def prefetch(self) -> dict[str, Any]:
        """Start a pass and wait for its report."""
        before = json.loads(self.request("GET", "/.pkgcache/prefetch"))["last"]
        started = before.get("debian", {}).get("started", 0.0)
        self.request("POST", "/.pkgcache/prefetch?repository=debian")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            last = json.loads(self.request("GET", "/.pkgcache/prefetch"))["last"]
            report = last.get("debian")
            if report and report["finished"] and report["started"] > started:
                return report
            time.sleep(0.1)
        raise RuntimeError("bench: W11: the prefetch pass did not end")


def run(bench: Bench) -> None:
    apt = _aptrepo()
    gnupghome = Path(tempfile.mkdtemp(prefix="pc-w11-gpg-"))
    repo = apt.AptRepo(bench.s.files / "w11-debian", gnupghome)
    try:
        names = [f"w11pkg{n}" for n in range(PACKAGES)]
        for name in names:
            repo.add_package(name, "1.0", os.urandom(PAYLOAD))
        repo.publish()
        W11(bench, apt, repo, names).run()
    finally:
        repo.close()


class W11:
    def __init__(self, bench: Bench, apt: Any, repo: Any, names: list[str]) -> None:
        self.bench = bench
        self.apt = apt
        self.repo = repo
        self.names = names
        self.folder = bench.s.work / "w11"
        self.folder.mkdir()
        # Paced per connection, like a mirror across the internet: what a
        # client waits for on a miss is the upstream's time.
        self.origin = Origin(bench.s, self.folder, repo.root, f"limit_rate {RATE};")
        self.caches = {
            "on": Cache(bench, self.folder / "on", self.origin.port, "1h"),
            "off": Cache(bench, self.folder / "off", self.origin.port, "0"),
        }
        self.seq = itertools.count(1)
        for cache in self.caches.values():
            self.phase(cache, 1)

    def clients(self, cache: Cache, count: int) -> list[Any]:
        line = (
            f"deb [signed-by={self.repo.keyring}] "
            f"http://127.0.0.1:{cache.port}/debian/ stable main"
        )
        return [
            self.apt.AptClient(self.folder / "clients" / f"c{next(self.seq)}", line)
            for _ in range(count)
        ]

    def phase(self, cache: Cache, count: int) -> tuple[float, int, int]:
        """``count`` clients at once: seconds, upstream requests, failures."""
        self.origin.since_last()
        clients = self.clients(cache, count)
        script = "apt-get -q update && apt-get -q download " + " ".join(self.names)
        started = time.monotonic()
        procs = []
        for client in clients:
            (client.folder / "got").mkdir()
            procs.append(
                subprocess.Popen(
                    ["sh", "-c", script],
                    cwd=client.folder / "got",
                    env=client.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        failed = sum(proc.wait(300) != 0 for proc in procs)
        seconds = time.monotonic() - started
        return seconds, len(self.origin.since_last()), failed

    def once(self) -> list[float]:
        version = f"1.{next(self.seq)}"
        for name in self.names[: PACKAGES // 2]:
            self.repo.add_package(name, version, os.urandom(PAYLOAD))
        self.repo.publish()
        for cache in self.caches.values():
            cache.advance(FRESH_FOR + 1)
        report = self.caches["on"].prefetch()
        self.origin.since_last()
        on = self.phase(self.caches["on"], CLIENTS)
        off = self.phase(self.caches["off"], CLIENTS)
        print(
            f"bench: W11 pass: {report['files']}, {report['bytes']} bytes; "
            f"on: {on[0]:.2f} s, {on[1]} upstream, {on[2]} failed; "
            f"off: {off[0]:.2f} s, {off[1]} upstream, {off[2]} failed",
            file=sys.stderr,
        )
        return [on[0] / off[0], on[1], off[1], on[0], off[0], on[2] + off[2]]

    def run(self) -> None:
        cols = self.bench.repeat(self.once)
        record = self.bench.record
        record(
            f"W11 {CLIENTS} apt-get update + download after half the packages moved",
            "time to all done: prefetch on / off",
            cols[0],
            "< 1",
        )
        record(
            "W11",
            "upstream requests while clients wait: prefetch on",
            cols[1],
            "0",
            "{:.0f}",
        )
        record(
            "W11",
            "upstream requests while clients wait: prefetch off",
            cols[2],
            "-",
            "{:.0f}",
        )
        record("W11", "seconds to all done: prefetch on", cols[3], "-")
        record("W11", "seconds to all done: prefetch off", cols[4], "-")
        record("W11", "failed clients", cols[5], "0", "{:.0f}")
