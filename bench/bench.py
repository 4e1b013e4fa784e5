"""Benchmark package-cache beside nginx and bare tornado, in one run.

Run with ``make bench`` (or ``python bench/bench.py --runs 3``). Installs
nginx, wrk and (for W2 and W7) apt-cacher-ng from Debian when missing (as
root). Everything runs on 127.0.0.1. Prints one markdown table of ratios,
medians of ``--runs`` runs with min-max, and writes it to
``bench/results.md``. These machines are noisy: read the ratios, not the
absolute numbers.

Workloads, one module each: W1 cold coalesced
(``w1_cold_coalesced.py``), W2 big hit, beside nginx static and
apt-cacher-ng (``w2_big_hit.py``), W3 small hit (``w3_small_hit.py``), W4
slow client memory (``w4_slow_client.py``), W5 cold miss throughput
(``w5_cold_miss.py``), W6 1000 connections (``w6_connections.py``), W7 20
apt-get update after the indexes changed, beside apt-cacher-ng
(``w7_apt_update.py``), W8 pip download of 30 wheels, cold then warm,
beside proxpi and devpi-server (``w8_pypi.py``; those two are installed
from PyPI in ``.venv-bench``), W9 8 skopeo pulls of one image, cold then
warm, beside the distribution registry in proxy mode (``w9_oci.py``),
W10 go mod download of 40 modules and cargo fetch of 40 crates, cold
and warm, beside the bare origin (``w10_go.py``, ``w10_cargo.py``), W11
twenty apt clients after half the packages moved, with prefetch on and
off (``w11_prefetch.py``), W12 the status page's cost with 100
repositories (``w12_status.py``). What they share is in ``runner.py``.
``--only W7,W8`` runs only those workloads.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import runner
import w1_cold_coalesced
import w2_big_hit
import w3_small_hit
import w4_slow_client
import w5_cold_miss
import w6_connections
import w7_apt_update
import w8_pypi
import w9_oci
import w10_cargo
import w10_go
import w11_prefetch
import w12_status

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "W12")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="smaller files, short runs"
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="the workloads to run, comma-separated (default: all of them)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if unknown := only - set(WORKLOADS):
        parser.error(f"--only: no workload {', '.join(sorted(unknown))}")
    runner.ensure_tools()
    if "W8" in only:
        w8_pypi.ensure_peers()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as another user
        with runner.servers(work) as s:
            f = runner.prepare(s, args.quick)
            bench = runner.Bench(s, args.runs, args.quick)
            # In this order: the table's rows follow it.
            steps: dict[str, Callable[[], None]] = {
                "W1": lambda: w1_cold_coalesced.run(bench, f.slow_port),
                "W2": lambda: w2_big_hit.run(bench, f.fast[0], f.acng_port),
                "W3": lambda: w3_small_hit.run(
                    bench, f.fast, f.bare, f.tornado_static_port, f.volatile
                ),
                "W4": lambda: w4_slow_client.run(bench),
                "W5": lambda: w5_cold_miss.run(bench, f.fast[0]),
                "W6": lambda: w6_connections.run(bench, f.fast[0]),
                "W7": lambda: w7_apt_update.run(bench),
                "W8": lambda: w8_pypi.run(bench),
                "W9": lambda: w9_oci.run(bench),
                "W10": lambda: (w10_go.run(bench), w10_cargo.run(bench)),
                "W11": lambda: w11_prefetch.run(bench),
                "W12": lambda: w12_status.run(bench),
            }
            for name, step in steps.items():
                if name in only:
                    print(f"bench: {name}", file=sys.stderr, flush=True)
                    step()
            table = bench.table()
    print(table)
    if not args.quick and only == set(WORKLOADS):
        (runner.HERE / "results.md").write_text("# Benchmark results\n\n" + table)


if __name__ == "__main__":
    main()
