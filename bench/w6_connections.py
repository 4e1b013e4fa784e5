"""W6 1000 connections: wrk holds 1000 connections on one 16 KiB hit and
counts errors (connect, read, write and timeout errors and non-2xx answers)
and the p99 latency over 10 s a run (5 with ``--quick``), against nginx
static on the same file. The target is no errors at all; nginx, built for
many connections with an event loop in each of its two workers, shows what
p99 latency this machine allows.
"""

from __future__ import annotations

from runner import Bench, wrk

PATH = "/w3.bin"


def run(bench: Bench, pc_port: int) -> None:
    """``pc_port``: package-cache in front of the fast origin."""
    seconds = 5 if bench.quick else 10

    def once() -> list[float]:
        result = wrk(f"http://127.0.0.1:{pc_port}{PATH}", 1000, seconds)
        nginx = wrk(f"http://127.0.0.1:{bench.s.static_port}{PATH}", 1000, seconds)
        return [result["errors"], result["p99_ms"], nginx["p99_ms"]]

    cols = bench.repeat(once)
    bench.record("W6 1000 connections", "errors", cols[0], "0", "{:.0f}")
    bench.record("W6", "p99 latency ms: package-cache", cols[1], "-", "{:.0f}")
    bench.record("W6", "p99 latency ms: nginx static", cols[2], "-", "{:.0f}")
