"""Benchmark package-cache beside nginx and bare tornado, in one run.

Run with ``make bench`` (or ``python bench/bench.py --runs 3``). Installs
nginx and wrk from Debian when missing (as root). Everything runs on
127.0.0.1. Prints one markdown table of ratios, medians of ``--runs`` runs
with min-max, and writes it to ``bench/results.md``. These machines are
noisy: read the ratios, not the absolute numbers.

Workloads (see issue 5): W1 cold coalesced, W2 big hit, W3 small hit,
W4 slow client memory, W5 cold miss throughput, W6 1000 connections.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 1024 * 1024

NGINX_CONF = """
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {work}/nginx-access.log;
    sendfile on; tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=pc:10m
                     max_size=10g inactive=1d use_temp_path=off;
    server {{
        listen 127.0.0.1:{origin_port};
        location /fast/ {{ alias {files}/; }}
        location /slow/ {{ alias {files}/; limit_rate 10000000; }}
    }}
    server {{
        listen 127.0.0.1:{static_port};
        location / {{ root {files}; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://127.0.0.1:{origin_port}/slow/;
            proxy_cache pc;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 600s;
            proxy_cache_lock_age 600s;
            proxy_buffering on;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def ensure_tools() -> None:
    missing = [
        pkg
        for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk"), ("curl", "curl"))
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: please install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@dataclass
class Servers:
    work: Path
    files: Path
    origin_port: int = field(default_factory=free_port)
    #: pacedorigin.py: files at a steady rate, like a link (W5).
    paced_port: int = field(default_factory=free_port)
    static_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_nginx(self) -> None:
        conf = self.work / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                work=self.work,
                files=self.files,
                origin_port=self.origin_port,
                static_port=self.static_port,
                proxy_port=self.proxy_port,
            )
        )
        subprocess.run([nginx_binary(), "-c", str(conf)], check=True)
        for port in (self.origin_port, self.static_port, self.proxy_port):
            wait_port(port)

    def stop_nginx(self) -> None:
        pid_file = self.work / "nginx.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)

    def start(self, args: list[str], port: int) -> subprocess.Popen[bytes]:
        log = open(self.work / f"server-{port}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT)
        self.processes.append(process)
        wait_port(port)
        return process

    def package_cache(
        self, source: str, name: str, cache: Path | None = None
    ) -> tuple[int, subprocess.Popen]:
        """Start package-cache on a free port; its cache is ``cache``, or
        ``cache-NAME`` in the work folder."""
        port = free_port()
        cache = cache or self.work / f"cache-{name}"
        process = self.start(
            [
                sys.executable,
                "-m",
                "pkgcache",
                "--source",
                source,
                "--cache",
                str(cache),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-v",
            ],
            port,
        )
        return port, process

    def stop_all(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.stop_nginx()

    def origin_requests(self, path: str) -> int:
        log = (self.work / "nginx-access.log").read_text()
        return len(re.findall(rf'"GET /(?:fast|slow){re.escape(path)} ', log))


def curl(url: str, output: str = "/dev/null") -> tuple[float, float, int]:
    """Fetch ``url``; returns (time to first byte, total time, bytes)."""
    result = subprocess.run(
        [
            "curl",
            "-fsS",
            "-o",
            output,
            "-w",
            "%{time_starttransfer} %{time_total} %{size_download}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    first, total, size = result.stdout.split()
    return float(first), float(total), int(size)


def parallel_curl(
    urls: list[str], delay: float = 0.0
) -> tuple[list[tuple[float, float]], list[float]]:
    """Start one curl per URL, ``delay`` apart.

    Returns (first byte, done) times from the first start, and each
    client's own time to first byte.
    """
    t0 = time.monotonic()
    procs = []
    starts = []
    for url in urls:
        starts.append(time.monotonic() - t0)
        procs.append(
            subprocess.Popen(
                [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{time_starttransfer} %{time_total}",
                    url,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        if delay:
            time.sleep(delay)
    results = []
    for start, proc in zip(starts, procs, strict=True):
        out, _ = proc.communicate(timeout=900)
        first, total = (float(x) for x in out.split())
        results.append((start + first, start + total, first))
    return [(first_abs, done) for first_abs, done, _ in results], [
        first for _, _, first in results
    ]


def wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(x) for x in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    p99 = _latency_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "errors": errors, "p99_ms": p99, "requests": requests}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(url: str, pid: int, seconds: int) -> tuple[float, float]:
    """wrk on ``url``: (requests per second, server CPU microseconds per
    request). The CPU cost is the steadier of the two on a small machine,
    where wrk and the server share the cores."""
    before = cpu_seconds(pid)
    result = wrk(url, 32, seconds)
    used = cpu_seconds(pid) - before
    return result["rps"], used * 1e6 / max(1, result["requests"])


def _latency_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as file:
        block = os.urandom(MIB)
        for _ in range(size // MIB):
            file.write(block)
        file.write(block[: size % MIB])


def link(files: Path, source: str, name: str) -> str:
    """A new name for an existing file: a cold miss without new disk space."""
    target = files / name
    if not target.exists():
        os.link(files / source, target)
    return "/" + name


class Bench:
    def __init__(self, servers: Servers, runs: int, quick: bool) -> None:
        self.s = servers
        self.runs = runs
        self.quick = quick
        self.rows: list[tuple[str, str, list[float], str, str]] = []
        self.seq = 0

    def unique(self, base: str) -> str:
        self.seq += 1
        return f"{base}.{self.seq}"

    def record(
        self,
        workload: str,
        measure: str,
        values: list[float],
        target: str,
        fmt: str = "{:.2f}",
    ) -> None:
        self.rows.append((workload, measure, values, target, fmt))

    def repeat(self, function: Callable[[], list[float]]) -> list[list[float]]:
        samples = [function() for _ in range(self.runs)]
        return [list(column) for column in zip(*samples, strict=True)]

    def w1(self, pc_port: int) -> None:
        """20 clients 0.1 s apart on one cold 20 MB file at 10 MB/s."""

        def run() -> list[float]:
            name = link(self.s.files, "w1.bin", self.unique("w1"))
            direct = curl(f"http://127.0.0.1:{self.s.origin_port}/slow{name}")[1]
            out = []
            for port in (pc_port, self.s.proxy_port):
                name = link(self.s.files, "w1.bin", self.unique("w1"))
                url = f"http://127.0.0.1:{port}{name}"
                times, firsts = parallel_curl([url] * 20, delay=0.1)
                out += [
                    self.s.origin_requests(name),
                    firsts[-1] * 1000,
                    max(firsts[1:]) * 1000,
                    max(done for _, done in times) / direct,
                ]
            return out

        cols = self.repeat(run)
        self.record(
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
            self.record(
                "W1",
                f"latest joiner TTFB ms: {who}",
                cols[offset + 1],
                target[0],
                "{:.0f}",
            )
            self.record(
                "W1",
                f"worst joiner TTFB ms: {who}",
                cols[offset + 2],
                target[1],
                "{:.0f}",
            )
            self.record(
                "W1",
                f"last client done / one direct download: {who}",
                cols[offset + 3],
                target[2],
            )

    def throughput(self, url: str, streams: int, rounds: int = 1) -> float:
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
        size = (self.s.files / url.rsplit("/", 1)[1]).stat().st_size
        return rounds * streams * size / (time.monotonic() - t0) / MIB

    def w2(self, pc_port: int) -> None:
        path = "/w2.bin"
        curl(f"http://127.0.0.1:{pc_port}{path}")  # make it a hit
        os.sync()  # the fresh copy's writeback would weigh on the first runs

        def run() -> list[float]:
            out = []
            for streams in (1, 8):
                # Alternate who goes first: the second of two big reads in a
                # row tends to be faster here, whoever it is.
                pair = [
                    f"http://127.0.0.1:{pc_port}{path}",
                    f"http://127.0.0.1:{self.s.static_port}{path}",
                ]
                self.flip = not getattr(self, "flip", False)
                order = pair[::-1] if self.flip else pair
                rounds = 8 if streams == 1 else 1
                speeds = {url: self.throughput(url, streams, rounds) for url in order}
                ours, theirs = speeds[pair[0]], speeds[pair[1]]
                out += [ours / theirs, ours, theirs]
            return out

        cols = self.repeat(run)
        for i, streams in enumerate((1, 8)):
            self.record(
                "W2 big hit",
                f"{streams} stream(s): MB/s vs nginx static",
                cols[3 * i],
                ">= 0.9",
            )
            self.record(
                "W2",
                f"{streams} stream(s): package-cache MiB/s",
                cols[3 * i + 1],
                "-",
                "{:.0f}",
            )
            self.record(
                "W2",
                f"{streams} stream(s): nginx static MiB/s",
                cols[3 * i + 2],
                "-",
                "{:.0f}",
            )

    def w3(self, pc: tuple[int, int], bare: tuple[int, int], static_port: int) -> None:
        """16 KiB hits; ``pc`` and ``bare`` are (port, pid)."""
        path = "/w3.bin"
        curl(f"http://127.0.0.1:{pc[0]}{path}")
        seconds = 3 if self.quick else 5

        def run() -> list[float]:
            # Alternate who goes first, as in W2.
            self.flip3 = not getattr(self, "flip3", False)
            order = [pc, bare][:: -1 if self.flip3 else 1]
            measured = {
                port: wrk_cpu(f"http://127.0.0.1:{port}{path}", pid, seconds)
                for port, pid in order
            }
            (ours, our_cpu), (theirs, their_cpu) = measured[pc[0]], measured[bare[0]]
            static = wrk(f"http://127.0.0.1:{static_port}{path}", 32, seconds)["rps"]
            nginx = wrk(f"http://127.0.0.1:{self.s.static_port}{path}", 32, seconds)[
                "rps"
            ]
            return [
                ours / theirs,
                their_cpu / our_cpu,
                ours / static,
                ours / nginx,
                ours,
                theirs,
                our_cpu,
                their_cpu,
            ]

        cols = self.repeat(run)
        self.record("W3 small hit", "req/s vs bare tornado handler", cols[0], ">= 0.9")
        self.record(
            "W3",
            "CPU per request: bare tornado handler / package-cache",
            cols[1],
            "-",
        )
        self.record("W3", "req/s vs tornado StaticFileHandler", cols[2], "-")
        self.record("W3", "req/s vs nginx static", cols[3], "-")
        self.record("W3", "package-cache req/s", cols[4], "-", "{:.0f}")
        self.record("W3", "bare tornado req/s", cols[5], "-", "{:.0f}")
        self.record("W3", "package-cache CPU us per request", cols[6], "-", "{:.0f}")
        self.record("W3", "bare tornado CPU us per request", cols[7], "-", "{:.0f}")

    def w4(self) -> None:
        """1 GiB cold miss, a 2 MB/s reader and a fast one: peak RSS growth."""

        def run() -> list[float]:
            cache_name = self.unique("w4cache")
            port, process = self.s.package_cache(
                f"http://127.0.0.1:{self.s.origin_port}/fast", cache_name
            )
            time.sleep(0.5)
            before = peak_rss_kib(process.pid)
            name = link(self.s.files, "w4.bin", self.unique("w4"))
            url = f"http://127.0.0.1:{port}{name}"
            slow = subprocess.Popen(
                ["curl", "-fsS", "-o", "/dev/null", "--limit-rate", "2M", url]
            )
            time.sleep(0.3)
            curl(url)
            cached = self.s.work / f"cache-{cache_name}"
            growth = (peak_rss_kib(process.pid) - before) / 1024
            slow.kill()
            process.terminate()
            process.wait(15)
            shutil.rmtree(cached, ignore_errors=True)
            return [growth]

        cols = self.repeat(run)
        self.record(
            "W4 slow client",
            "peak RSS growth MiB (1 GiB miss)",
            cols[0],
            "<= 32",
            "{:.1f}",
        )

    def w5(self, pc_port: int) -> None:
        """Cold miss, one client, fast origin: against a direct download.

        A cache writes what it fetches, so the direct download writes the
        file too, to the same file system, and both start after a sync. The
        origin sends at 1, 4 and 8 Gbit/s, paced by the kernel like a link
        (``pacedorigin.py``), and unthrottled from nginx on loopback, where
        the origin, package-cache and the client share the machine's cores
        and package-cache's own ceiling shows. Memory this VM has not
        touched yet faults in at a few hundred MiB/s, whoever writes, so
        before each download a file of the same size is written and
        removed on that file system, and each copy is removed after.
        """
        shm = Path("/dev/shm") / f"pc-bench-{os.getpid()}"
        shm.mkdir()
        paced = f"http://127.0.0.1:{self.s.paced_port}"
        origins = {
            "1 Gbit/s": f"{paced}/gbit1",
            "4 Gbit/s": f"{paced}/gbit4",
            "8 Gbit/s": f"{paced}/gbit8",
            "unthrottled": f"http://127.0.0.1:{self.s.origin_port}/fast",
        }
        ports = {}
        for label, origin in origins.items():
            cache = shm / label.split()[0]
            port, _ = self.s.package_cache(origin, label, cache)
            ports[label] = (port, cache)
        size = (self.s.files / "w5.bin").stat().st_size

        def fresh_pages(folder: Path) -> None:
            scratch = folder / "scratch"
            make_file(scratch, size + 64 * MIB)
            scratch.unlink()
            os.sync()

        def pair(origin: str, port: int, cache: Path, folder: Path) -> list[float]:
            name = link(self.s.files, "w5.bin", self.unique("w5"))
            target = folder / "direct"
            fresh_pages(folder)
            direct = curl(origin + name, str(target))[1]
            target.unlink()
            name = link(self.s.files, "w5.bin", self.unique("w5"))
            fresh_pages(folder)
            ours = curl(f"http://127.0.0.1:{port}{name}")[1]
            stored = cache / name.lstrip("/")
            deadline = time.monotonic() + 30  # published just after the last byte
            while not stored.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            stored.unlink()
            return [direct / ours, size / MIB / ours, size / MIB / direct]

        def one(
            origin: str, port: int, cache: Path, folder: Path, pairs: int
        ) -> list[float]:
            """Median of ``pairs`` pairs: a download from a fast origin
            lasts about a second, and one hiccup of this VM (a single
            download at half speed, whoever downloads) swings it."""
            samples = [pair(origin, port, cache, folder) for _ in range(pairs)]
            return [statistics.median(column) for column in zip(*samples, strict=True)]

        cases = [
            (
                f"tmpfs, origin {label}",
                origins[label],
                *ports[label],
                shm,
                1 if label == "1 Gbit/s" else 3,
            )
            for label in origins
        ]
        cases.append(
            (
                "disk, origin unthrottled",
                origins["unthrottled"],
                pc_port,
                self.s.work / "cache-fast",
                self.s.work,
                3,
            )
        )

        def run() -> list[float]:
            out: list[float] = []
            for _label, *case in cases:
                out += one(*case)
            return out

        try:
            cols = self.repeat(run)
        finally:
            shutil.rmtree(shm, ignore_errors=True)
        for i, (label, *_rest) in enumerate(cases):
            # Unthrottled, the direct download alone swings between 0.8
            # and 1.7 GiB/s from run to run on this VM, while
            # package-cache's stays within a tenth: the ratio shows the
            # ceiling, it is no verdict. The origins paced like a link
            # are the fast origins the target is about.
            paced = "unthrottled" not in label
            self.record(
                f"W5 cold miss ({label})",
                "throughput vs direct download to the same fs"
                + ("" if paced else " (all three on 2 cores: ceiling)"),
                cols[3 * i],
                ">= 0.9" if paced else "-",
            )
            self.record(
                "W5", f"package-cache MiB/s ({label})", cols[3 * i + 1], "-", "{:.0f}"
            )
            self.record("W5", f"direct MiB/s ({label})", cols[3 * i + 2], "-", "{:.0f}")

    def w6(self, pc_port: int) -> None:
        path = "/w3.bin"
        seconds = 5 if self.quick else 10

        def run() -> list[float]:
            result = wrk(f"http://127.0.0.1:{pc_port}{path}", 1000, seconds)
            nginx = wrk(f"http://127.0.0.1:{self.s.static_port}{path}", 1000, seconds)
            return [result["errors"], result["p99_ms"], nginx["p99_ms"]]

        cols = self.repeat(run)
        self.record("W6 1000 connections", "errors", cols[0], "0", "{:.0f}")
        self.record("W6", "p99 latency ms: package-cache", cols[1], "-", "{:.0f}")
        self.record("W6", "p99 latency ms: nginx static", cols[2], "-", "{:.0f}")

    def table(self) -> str:
        lines = [
            f"Machine: {os.cpu_count()} cores, {platform()}; {self.runs} runs; "
            "median [min-max].",
            "",
            "| workload | measure | result | target |",
            "|---|---|---|---|",
        ]
        for workload, measure, values, target, fmt in self.rows:
            if values and isinstance(values[0], str):
                shown = " ; ".join(values)
            else:
                med = fmt.format(statistics.median(values))
                shown = f"{med} [{fmt.format(min(values))}-{fmt.format(max(values))}]"
            lines.append(f"| {workload} | {measure} | {shown} | {target} |")
        return "\n".join(lines) + "\n"


def platform() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = match.group(1) if match else ""
    return model or os.uname().machine


@contextmanager
def servers(work: Path) -> Iterator[Servers]:
    files = work / "files"
    files.mkdir(exist_ok=True)
    running = Servers(work, files)
    try:
        running.start_nginx()
        yield running
    finally:
        running.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="smaller files, short runs"
    )
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,W6")
    args = parser.parse_args()
    ensure_tools()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as another user
        with servers(work) as s:
            big = 128 * MIB if args.quick else 512 * MIB
            make_file(s.files / "w1.bin", 20_000_000)
            make_file(s.files / "w2.bin", big)
            make_file(s.files / "w3.bin", 16384)
            make_file(s.files / "w4.bin", (256 if args.quick else 1024) * MIB)
            make_file(s.files / "w5.bin", big)
            fast_port, fast_process = s.package_cache(
                f"http://127.0.0.1:{s.origin_port}/fast", "fast"
            )
            slow_port, _ = s.package_cache(
                f"http://127.0.0.1:{s.origin_port}/slow", "slow"
            )
            s.start(
                [
                    sys.executable,
                    str(HERE / "pacedorigin.py"),
                    str(s.paced_port),
                    str(s.files),
                ],
                s.paced_port,
            )
            bare_port, static_port = free_port(), free_port()
            bare_process = s.start(
                [sys.executable, str(HERE / "refservers.py"), "bare", str(bare_port)],
                bare_port,
            )
            s.start(
                [
                    sys.executable,
                    str(HERE / "refservers.py"),
                    "static",
                    str(static_port),
                    str(s.files),
                ],
                static_port,
            )
            bench = Bench(s, args.runs, args.quick)
            steps = {
                "W1": lambda: bench.w1(slow_port),
                "W2": lambda: bench.w2(fast_port),
                "W3": lambda: bench.w3(
                    (fast_port, fast_process.pid),
                    (bare_port, bare_process.pid),
                    static_port,
                ),
                "W4": bench.w4,
                "W5": lambda: bench.w5(fast_port),
                "W6": lambda: bench.w6(fast_port),
            }
            for name, step in steps.items():
                if name in only:
                    print(f"bench: {name}", file=sys.stderr, flush=True)
                    step()
            table = bench.table()
    print(table)
    if not args.quick and only == set(steps):
        (HERE / "results.md").write_text("# Benchmark results\n\n" + table)


if __name__ == "__main__":
    main()
