"""W3 small hit: wrk with 32 connections on one cached 16 KiB file measures
requests per second and the server's CPU time per request, for 5 s a run (3
with ``--quick``), against a bare tornado handler that answers every request
with 16 KiB from memory (``refservers.py bare``). That handler is the
ceiling of any server on tornado, so the ratio shows what package-cache's
own code costs per request; tornado's StaticFileHandler and nginx static are
measured beside it for scale. The CPU time per request is the steadier
number on a small machine, where wrk and the server share the cores.
"""

from __future__ import annotations

import itertools

from runner import Bench, curl, wrk, wrk_cpu

PATH = "/w3.bin"


def run(
    bench: Bench, pc: tuple[int, int], bare: tuple[int, int], tornado_static_port: int
) -> None:
    """``pc`` (package-cache on the fast origin) and ``bare`` are
    (port, pid); ``tornado_static_port`` is tornado's StaticFileHandler."""
    curl(f"http://127.0.0.1:{pc[0]}{PATH}")
    seconds = 3 if bench.quick else 5
    # Alternate who goes first, starting with the bare handler, as in W2.
    bare_first = itertools.cycle([True, False])

    def once() -> list[float]:
        order = [pc, bare][:: -1 if next(bare_first) else 1]
        measured = {
            port: wrk_cpu(f"http://127.0.0.1:{port}{PATH}", pid, seconds)
            for port, pid in order
        }
        (ours, our_cpu), (theirs, their_cpu) = measured[pc[0]], measured[bare[0]]
        static = wrk(f"http://127.0.0.1:{tornado_static_port}{PATH}", 32, seconds)
        nginx = wrk(f"http://127.0.0.1:{bench.s.static_port}{PATH}", 32, seconds)
        return [
            ours / theirs,
            their_cpu / our_cpu,
            ours / static["rps"],
            ours / nginx["rps"],
            ours,
            theirs,
            our_cpu,
            their_cpu,
        ]

    cols = bench.repeat(once)
    bench.record("W3 small hit", "req/s vs bare tornado handler", cols[0], ">= 0.9")
    bench.record(
        "W3",
        "CPU per request: bare tornado handler / package-cache",
        cols[1],
        "-",
    )
    bench.record("W3", "req/s vs tornado StaticFileHandler", cols[2], "-")
    bench.record("W3", "req/s vs nginx static", cols[3], "-")
    bench.record("W3", "package-cache req/s", cols[4], "-", "{:.0f}")
    bench.record("W3", "bare tornado req/s", cols[5], "-", "{:.0f}")
    bench.record("W3", "package-cache CPU us per request", cols[6], "-", "{:.0f}")
    bench.record("W3", "bare tornado CPU us per request", cols[7], "-", "{:.0f}")
