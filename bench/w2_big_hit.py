"""W2 big hit: the MiB/s of one curl stream and of 8 concurrent ones on a
cached 512 MiB file (128 MiB with ``--quick``), each from package-cache,
from nginx serving the same file as a static file, and from apt-cacher-ng
with the same file in its cache. nginx static, with ``sendfile``, is about
the fastest way to move a file from this machine's page cache to a socket,
so that ratio shows what package-cache's hit path costs on top of the
kernel's own copy; apt-cacher-ng is the cache package-cache replaces.

apt-cacher-ng caches only what its patterns call a package, so it gets the
file as ``runner.W2_DEB`` (a hard link to it), through a ``Remap-`` of
nginx's ``/fast/``; one download through it makes it a hit.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time

from runner import MIB, W2_DEB, Bench, curl

PATH = "/w2.bin"
SERVERS = ("package-cache", "nginx static", "apt-cacher-ng")


def throughput(url: str, size: int, streams: int, rounds: int = 1) -> float:
    """MiB/s of ``streams`` concurrent downloads of ``size`` bytes,
    ``rounds`` times over: a single 512 MiB stream lasts 0.2 s, too short
    to time alone."""
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
    return rounds * streams * size / (time.monotonic() - t0) / MIB


def run(bench: Bench, pc_port: int, acng_port: int) -> None:
    """``pc_port``: package-cache in front of the fast origin;
    ``acng_port``: apt-cacher-ng with the fast origin as ``/w2/``."""
    s = bench.s
    size = (s.files / PATH.lstrip("/")).stat().st_size
    urls = {
        "package-cache": f"http://127.0.0.1:{pc_port}{PATH}",
        "nginx static": f"http://127.0.0.1:{s.static_port}{PATH}",
        "apt-cacher-ng": f"http://127.0.0.1:{acng_port}/w2/{W2_DEB}",
    }
    for name in ("package-cache", "apt-cacher-ng"):  # make them hits
        _first, _total, got = curl(urls[name])
        if got != size:
            raise RuntimeError(f"bench: W2: {name} sent {got} of {size} bytes")
    os.sync()  # the fresh copies' writeback would weigh on the first runs
    # Rotate who goes first: the second of two big reads in a row tends to
    # be faster here, whoever it is.
    orders = itertools.cycle(
        [SERVERS[i:] + SERVERS[:i] for i in (1, 0, 2)]  # nginx first, first
    )

    def once() -> list[float]:
        out = []
        for streams in (1, 8):
            rounds = 8 if streams == 1 else 1
            speeds = {
                name: throughput(urls[name], size, streams, rounds)
                for name in next(orders)
            }
            ours = speeds["package-cache"]
            out += [
                ours / speeds["nginx static"],
                ours / speeds["apt-cacher-ng"],
                ours,
                speeds["nginx static"],
                speeds["apt-cacher-ng"],
            ]
        return out

    cols = bench.repeat(once)
    if (fetched := s.origin_requests("/" + W2_DEB)) != 1:
        raise RuntimeError(f"bench: W2: apt-cacher-ng fetched it {fetched} times")
    for i, streams in enumerate((1, 8)):
        first = 5 * i
        bench.record(
            "W2 big hit",
            f"{streams} stream(s): MB/s vs nginx static",
            cols[first],
            ">= 0.9",
        )
        bench.record(
            "W2 big hit",
            f"{streams} stream(s): MB/s vs apt-cacher-ng",
            cols[first + 1],
            ">= 1.0",
        )
        for offset, name in enumerate(SERVERS, start=2):
            bench.record(
                "W2",
                f"{streams} stream(s): {name} MiB/s",
                cols[first + offset],
                "-",
                "{:.0f}",
            )
