"""W4 slow client: a fresh package-cache fetches a 1 GiB file (256 MiB with
``--quick``) from the fast origin for two clients, one reading at 2 MB/s and
one as fast as it can; it measures how much the server's peak RSS
(``VmHWM``) grows. There is no reference server: the bound is absolute, 32
MiB, because memory must not grow with the file or with the distance between
the readers. A server that kept for the slow reader what the fast one
already got would grow by hundreds of MiB.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from runner import Bench, curl, link, peak_rss_kib


def run(bench: Bench) -> None:
    s = bench.s

    def once() -> list[float]:
        cache_name = bench.unique("w4cache")
        port, process = s.package_cache(
            f"http://127.0.0.1:{s.origin_port}/fast", cache_name
        )
        time.sleep(0.5)
        before = peak_rss_kib(process.pid)
        name = link(s.files, "w4.bin", bench.unique("w4"))
        url = f"http://127.0.0.1:{port}{name}"
        slow = subprocess.Popen(
            ["curl", "-fsS", "-o", "/dev/null", "--limit-rate", "2M", url]
        )
        time.sleep(0.3)
        curl(url)
        cached = s.work / f"cache-{cache_name}"
        growth = (peak_rss_kib(process.pid) - before) / 1024
        slow.kill()
        process.terminate()
        process.wait(15)
        shutil.rmtree(cached, ignore_errors=True)
        return [growth]

    cols = bench.repeat(once)
    bench.record(
        "W4 slow client",
        "peak RSS growth MiB (1 GiB miss)",
        cols[0],
        "<= 32",
        "{:.1f}",
    )
