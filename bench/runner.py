"""What the workloads share: the servers, the measuring tools and the table.

``Servers`` starts nginx (a slow and a fast origin, a static server and a
``proxy_cache_lock`` proxy, all from one config) and the Python servers
beside it; ``prepare`` makes the files and starts package-cache and the
reference servers every workload runs against. The measuring tools are
curl, wrk and ``/proc``. ``Bench`` repeats a workload ``--runs`` times and
collects its rows; ``table`` shows each as median [min-max].
"""

from __future__ import annotations

import importlib
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

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

ACNG_CONF = """\
CacheDir: {folder}/cache
LogDir: {folder}/log
SupportDir: /usr/lib/apt-cacher-ng
BindAddress: 127.0.0.1
Port: {port}
SocketPath: {folder}/acng.socket
ForeGround: 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def low_port() -> int:
    """A free loopback port below 32768: apt-cacher-ng 3.7.4 can neither
    listen on a port above 32767 nor fetch from one (it answers 503
    "Connection refused")."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


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
        for tool, pkg in (
            ("nginx", "nginx-light"),
            ("wrk", "wrk"),
            ("curl", "curl"),
            # W2 and W7: apt-cacher-ng; W7: what tests/aptrepo.py builds a
            # signed repository with.
            ("apt-cacher-ng", "apt-cacher-ng"),
            ("apt-ftparchive", "apt-utils"),
            ("gpg", "gnupg"),
        )
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: please install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(install, env=env).returncode != 0:
        # Stale package lists name versions the mirror no longer has.
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(install, check=True, env=env)


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def acng_binary() -> str:
    return shutil.which("apt-cacher-ng") or "/usr/sbin/apt-cacher-ng"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@dataclass
class Servers:
    work: Path
    files: Path
    #: Below 32768, so that apt-cacher-ng can fetch from it (W2).
    origin_port: int = field(default_factory=low_port)
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

    def start(
        self,
        args: list[str],
        port: int,
        env: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> subprocess.Popen[bytes]:
        """Start a server, its output in ``server-PORT.log``; returns once
        it listens on ``port`` (``env``: its whole environment)."""
        log = open(self.work / f"server-{port}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT, env=env)
        self.processes.append(process)
        wait_port(port, timeout)
        return process

    def package_cache(
        self,
        source: str,
        name: str,
        cache: Path | None = None,
        config: str | None = None,
    ) -> tuple[int, subprocess.Popen[bytes]]:
        """Start package-cache on a free port; its cache is ``cache``, or
        ``cache-NAME`` in the work folder. ``config``: TOML for a config
        file (then ``source`` is not given as a flag)."""
        port = free_port()
        cache = cache or self.work / f"cache-{name}"
        if config is None:
            given = ["--source", source]
        else:
            config_path = self.work / f"{name}.conf"
            config_path.write_text(config)
            given = ["--config", str(config_path)]
        process = self.start(
            [
                sys.executable,
                "-m",
                "pkgcache",
                *given,
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

    def apt_cacher_ng(self, name: str, conf: str = "") -> int:
        """Start apt-cacher-ng on a free port below 32768, in the
        foreground, with a config folder, cache and logs of its own in
        ``NAME`` in the work folder; ``conf``: more lines of its config
        (``Remap-`` rules). The system's config and service are never used
        (Debian starts that one on port 3142 when it installs it)."""
        port = low_port()
        folder = self.work / name
        for sub in ("conf", "cache", "log"):
            (folder / sub).mkdir(parents=True)
        (folder / "conf" / "acng.conf").write_text(
            ACNG_CONF.format(folder=folder, port=port) + conf
        )
        try:
            self.start([acng_binary(), "-c", str(folder / "conf")], port)
        except RuntimeError:
            log = self.work / f"server-{port}.log"
            said = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"bench: apt-cacher-ng did not start:\n{said}") from None
        return port

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
    procs: list[subprocess.Popen[str]] = []
    starts: list[float] = []
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
    results: list[tuple[float, float, float]] = []
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


#: W2's file under a name apt-cacher-ng caches (a hard link to ``w2.bin``).
W2_DEB = "pool/main/w2_1.0_all.deb"

#: workload, measure, one value per run, target, format of a value.
Row = tuple[str, str, list[float] | list[str], str, str]


class Bench:
    """One benchmark run: the servers, how often to repeat, and the rows."""

    def __init__(self, servers: Servers, runs: int, quick: bool) -> None:
        self.s = servers
        self.runs = runs
        self.quick = quick
        self.rows: list[Row] = []
        self.seq = 0

    def unique(self, base: str) -> str:
        self.seq += 1
        return f"{base}.{self.seq}"

    def record(
        self,
        workload: str,
        measure: str,
        values: list[float] | list[str],
        target: str,
        fmt: str = "{:.2f}",
    ) -> None:
        self.rows.append((workload, measure, values, target, fmt))

    def repeat(self, function: Callable[[], list[float]]) -> list[list[float]]:
        samples = [function() for _ in range(self.runs)]
        return [list(column) for column in zip(*samples, strict=True)]

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


@dataclass
class Fixtures:
    """The servers the workloads measure, besides nginx; ``(port, pid)``
    where a workload reads the server's CPU time."""

    #: package-cache in front of nginx's ``/fast/``, which sends at once.
    fast: tuple[int, int]
    #: package-cache in front of nginx's ``/slow/``, 10 MB/s (W1).
    slow_port: int
    #: refservers.py bare: a tornado handler answering from memory (W3).
    bare: tuple[int, int]
    #: refservers.py static: tornado's StaticFileHandler (W3).
    tornado_static_port: int
    #: package-cache with a debian repository at "/" on nginx's ``/fast/``,
    #: where ``dists/stable/InRelease`` is volatile (W3).
    volatile: tuple[int, int]
    #: apt-cacher-ng with nginx's ``/fast/`` remapped as ``/w2/`` (W2).
    acng_port: int


def prepare(s: Servers, quick: bool) -> Fixtures:
    """Make every workload's file and start the servers they measure.

    All of it is done before the first workload, whichever ``--only``
    picks, so that no workload shares the machine with setup work."""
    big = 128 * MIB if quick else 512 * MIB
    make_file(s.files / "w1.bin", 20_000_000)
    make_file(s.files / "w2.bin", big)
    make_file(s.files / "w3.bin", 16384)
    (s.files / "dists/stable").mkdir(parents=True, exist_ok=True)
    make_file(s.files / "dists/stable/InRelease", 16384)
    (s.files / "pool/main").mkdir(parents=True, exist_ok=True)
    make_file(s.files / "pool/main/w3.deb", 16384)
    make_file(s.files / "w4.bin", (256 if quick else 1024) * MIB)
    make_file(s.files / "w5.bin", big)
    fast_port, fast_process = s.package_cache(
        f"http://127.0.0.1:{s.origin_port}/fast", "fast"
    )
    slow_port, _ = s.package_cache(f"http://127.0.0.1:{s.origin_port}/slow", "slow")
    s.start(
        [
            sys.executable,
            str(HERE / "pacedorigin.py"),
            str(s.paced_port),
            str(s.files),
        ],
        s.paced_port,
    )
    bare_port, tornado_static_port = free_port(), free_port()
    bare_process = s.start(
        [sys.executable, str(HERE / "refservers.py"), "bare", str(bare_port)],
        bare_port,
    )
    s.start(
        [
            sys.executable,
            str(HERE / "refservers.py"),
            "static",
            str(tornado_static_port),
            str(s.files),
        ],
        tornado_static_port,
    )
    volatile_port, volatile_process = s.package_cache(
        "",
        "volatile",
        config=(
            '[[repository]]\nname = "debian"\nprefix = "/"\nkind = "debian"\n'
            f'sources = ["http://127.0.0.1:{s.origin_port}/fast"]\n'
            'fresh_for = "1h"\n'
        ),
    )
    # apt-cacher-ng keeps only what its patterns name as packages.
    link(s.files, "w2.bin", W2_DEB)
    acng_port = s.apt_cacher_ng(
        "acng", f"Remap-w2: /w2 ; http://127.0.0.1:{s.origin_port}/fast\n"
    )
    return Fixtures(
        acng_port=acng_port,
        fast=(fast_port, fast_process.pid),
        slow_port=slow_port,
        bare=(bare_port, bare_process.pid),
        tornado_static_port=tornado_static_port,
        volatile=(volatile_port, volatile_process.pid),
    )


def tests_module(name: str) -> ModuleType:
    """A module of ``tests/`` (a repository or registry builder the
    workloads share with the tests); those import ``tests.*`` themselves,
    so the repository's top goes on ``sys.path``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"tests.{name}")


def spread_sizes(smallest: int, largest: int, count: int) -> list[int]:
    """``count`` file sizes from ``smallest`` to ``largest``, each the same
    factor larger than the one before (as a registry's files spread)."""
    step = (largest / smallest) ** (1 / (count - 1))
    return [round(smallest * step**n) for n in range(count)]
