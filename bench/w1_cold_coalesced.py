"""W1 cold coalesced: twenty curl clients start 0.1 s apart on one cold 20
MB file that the origin (nginx ``/slow/``) sends at 10 MB/s, so all of them
arrive while the first download is still running. It measures how many
requests reach the origin, the first-byte time of the latest joiner and of
the worst one, and when the last client is done, as a multiple of one direct
download from the origin. The reference is nginx with ``proxy_cache_lock``,
the usual way a caching proxy sends one request upstream for many clients:
it holds the joiners until the file is complete, where package-cache streams
to them what it has so far.
"""

from __future__ import annotations

from runner import Bench, curl, link, parallel_curl


def run(bench: Bench, pc_port: int) -> None:
    """``pc_port``: package-cache in front of the 10 MB/s origin."""
    s = bench.s

    def once() -> list[float]:
        name = link(s.files, "w1.bin", bench.unique("w1"))
        direct = curl(f"http://127.0.0.1:{s.origin_port}/slow{name}")[1]
        out = []
        for port in (pc_port, s.proxy_port):
            name = link(s.files, "w1.bin", bench.unique("w1"))
            url = f"http://127.0.0.1:{port}{name}"
            times, firsts = parallel_curl([url] * 20, delay=0.1)
            out += [
                s.origin_requests(name),
                firsts[-1] * 1000,
                max(firsts[1:]) * 1000,
                max(done for _, done in times) / direct,
            ]
        return out

    cols = bench.repeat(once)
    bench.record(
        "W1 cold coalesced",
        "origin requests (package-cache / nginx lock), per run",
        [f"{a:.0f} / {b:.0f}" for a, b in zip(cols[0], cols[4], strict=True)],
        "1",
        fmt="{}",
    )
    for offset, who, target in (
        (0, "package-cache", ("<= 50", "-", "<= 1.05")),
        (4, "nginx proxy_cache_lock", ("-", "-", "-")),
    ):
        bench.record(
            "W1",
            f"latest joiner TTFB ms: {who}",
            cols[offset + 1],
            target[0],
            "{:.0f}",
        )
        bench.record(
            "W1",
            f"worst joiner TTFB ms: {who}",
            cols[offset + 2],
            target[1],
            "{:.0f}",
        )
        bench.record(
            "W1",
            f"last client done / one direct download: {who}",
            cols[offset + 3],
            target[2],
        )
