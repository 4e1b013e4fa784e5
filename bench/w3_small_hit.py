"""W3 small hit: wrk with 32 connections on one cached 16 KiB file measures
requests per second and the server's CPU time per request, for 5 s a run (3
with ``--quick``), against a bare tornado handler that answers every request
with 16 KiB from memory (``refservers.py bare``). That handler is the
ceiling of any server on tornado, so the ratio shows what package-cache's
own code costs per request; tornado's StaticFileHandler and nginx static are
measured beside it for scale. The CPU time per request is the steadier
number on a small machine, where wrk and the server share the cores.

A volatile file within ``fresh_for`` (a Debian ``InRelease``) must cost no
more than an immutable one: the last row compares the two, in turn, on one
package-cache whose repository at "/" is of kind debian.
"""

from __future__ import annotations

import itertools

from runner import Bench, curl, wrk, wrk_cpu

PATH = "/w3.bin"
VOLATILE_PATH = "/dists/stable/InRelease"
#: An immutable file as deep as the InRelease (path work grows per segment).
POOL_PATH = "/pool/main/w3.deb"


def run(
    bench: Bench,
    pc: tuple[int, int],
    bare: tuple[int, int],
    tornado_static_port: int,
    volatile: tuple[int, int],
) -> None:
    """``pc`` (package-cache on the fast origin), ``bare`` and ``volatile``
    (package-cache with a debian repository) are (port, pid);
    ``tornado_static_port`` is tornado's StaticFileHandler."""
    curl(f"http://127.0.0.1:{pc[0]}{PATH}")
    curl(f"http://127.0.0.1:{volatile[0]}{VOLATILE_PATH}")
    curl(f"http://127.0.0.1:{volatile[0]}{POOL_PATH}")
    seconds = 3 if bench.quick else 5
    # Alternate who goes first, starting with the bare handler, as in W2.
    bare_first = itertools.cycle([True, False])
    volatile_first = itertools.cycle([True, False])

    def once() -> list[float]:
        order = [pc, bare][:: -1 if next(bare_first) else 1]
        measured = {
            port: wrk_cpu(f"http://127.0.0.1:{port}{PATH}", pid, seconds)
            for port, pid in order
        }
        (ours, our_cpu), (theirs, their_cpu) = measured[pc[0]], measured[bare[0]]
        static = wrk(f"http://127.0.0.1:{tornado_static_port}{PATH}", 32, seconds)
        nginx = wrk(f"http://127.0.0.1:{bench.s.static_port}{PATH}", 32, seconds)
        # Both from the same package-cache, one after the other, in turn.
        paths = [VOLATILE_PATH, POOL_PATH][:: 1 if next(volatile_first) else -1]
        on_debian = {
            path: wrk_cpu(f"http://127.0.0.1:{volatile[0]}{path}", volatile[1], seconds)
            for path in paths
        }
        return [
            ours / theirs,
            their_cpu / our_cpu,
            ours / static["rps"],
            ours / nginx["rps"],
            ours,
            theirs,
            our_cpu,
            their_cpu,
            on_debian[VOLATILE_PATH][0] / on_debian[POOL_PATH][0],
            on_debian[POOL_PATH][1] / on_debian[VOLATILE_PATH][1],
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
    bench.record(
        "W3 volatile hit",
        "req/s of an InRelease within fresh_for vs an immutable hit",
        cols[8],
        ">= 0.95",
    )
    bench.record(
        "W3",
        "CPU per request: immutable hit / InRelease within fresh_for",
        cols[9],
        ">= 0.95",
    )
