"""W2 big hit: the MiB/s of one curl stream and of 8 concurrent ones on a
cached 512 MiB file (128 MiB with ``--quick``), each from package-cache and
from nginx serving the same file as a static file. nginx static, with
``sendfile``, is about the fastest way to move a file from this machine's
page cache to a socket, so the ratio shows what package-cache's hit path
costs on top of the kernel's own copy.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path

from runner import MIB, Bench, curl

PATH = "/w2.bin"


def throughput(files: Path, url: str, streams: int, rounds: int = 1) -> float:
    """MiB/s of ``streams`` concurrent downloads, ``rounds`` times over:
    a single 512 MiB stream lasts 0.2 s, too short to time alone."""
    t0 = time.monotonic()
    for _ in range(rounds):
        procs = [
            subprocess.Popen(["curl", "-fsS", "-o", "/dev/null", url])
            for _ in range(streams)
        ]
        for proc in procs:
            # wait() with a timeout polls in sleeps of up to 50 ms, which
            # would quantize a 0.2 s transfer: block in waitpid instead.
            if proc.wait() != 0:
                raise RuntimeError(f"curl {url} failed")
    size = (files / url.rsplit("/", 1)[1]).stat().st_size
    return rounds * streams * size / (time.monotonic() - t0) / MIB


def run(bench: Bench, pc_port: int) -> None:
    """``pc_port``: package-cache in front of the fast origin."""
    s = bench.s
    curl(f"http://127.0.0.1:{pc_port}{PATH}")  # make it a hit
    os.sync()  # the fresh copy's writeback would weigh on the first runs
    # Alternate who goes first, starting with nginx: the second of two big
    # reads in a row tends to be faster here, whoever it is.
    nginx_first = itertools.cycle([True, False])

    def once() -> list[float]:
        out = []
        for streams in (1, 8):
            pair = [
                f"http://127.0.0.1:{pc_port}{PATH}",
                f"http://127.0.0.1:{s.static_port}{PATH}",
            ]
            order = pair[::-1] if next(nginx_first) else pair
            rounds = 8 if streams == 1 else 1
            speeds = {url: throughput(s.files, url, streams, rounds) for url in order}
            ours, theirs = speeds[pair[0]], speeds[pair[1]]
            out += [ours / theirs, ours, theirs]
        return out

    cols = bench.repeat(once)
    for i, streams in enumerate((1, 8)):
        bench.record(
            "W2 big hit",
            f"{streams} stream(s): MB/s vs nginx static",
            cols[3 * i],
            ">= 0.9",
        )
        bench.record(
            "W2",
            f"{streams} stream(s): package-cache MiB/s",
            cols[3 * i + 1],
            "-",
            "{:.0f}",
        )
        bench.record(
            "W2",
            f"{streams} stream(s): nginx static MiB/s",
            cols[3 * i + 2],
            "-",
            "{:.0f}",
        )
