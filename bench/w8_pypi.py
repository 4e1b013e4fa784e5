"""W8 pip download through three PyPI caches: ``pip download`` of the same
thirty wheels through package-cache, proxpi and devpi-server, each on the
same local test index, cold (a fresh cache) and then warm (clean pips
through the same cache).

The test index is ``tests/pypirepo.py``'s: an index origin (PEP 691 JSON
and HTML project pages, with ``#sha256=`` and PEP 658 ``.metadata``) and a
separate files origin, each counting the requests that reach it, by path.
The wheels are of many sizes, from 16 KiB to 4 MiB, about 24 MiB in all.

- package-cache: a ``[[repository]]`` of kind ``pypi`` at ``/pypi/`` with
  ``fresh_for = "10m"``.
- proxpi: as its container image runs it (``gunicorn --preload
  proxpi.server:app``: one worker; here without gunicorn's control
  socket), ``PROXPI_INDEX_URL`` set to the test index and
  ``PROXPI_CACHE_DIR`` to a folder of its own, the other settings at their
  defaults (index pages kept 30 minutes).
- devpi-server: a new server folder (``devpi-init --no-root-pypi``), then,
  with devpi-client, ``root/pypi`` made a mirror index whose
  ``mirror_url`` is the test index (project pages kept 30 minutes).

proxpi, devpi-server, devpi-client and gunicorn run from a virtualenv of
their own, ``.venv-bench`` at the top of the repository, which
``ensure_peers`` makes from ``bench/peers.txt`` (from PyPI, once).

Each run: for each cache in turn (who goes first rotates), a fresh state
folder and server and one clean pip (``--isolated --no-cache-dir
--no-deps`` with ``PIP_CONFIG_FILE=/dev/null``, the ``pip`` of the bench's
own virtualenv) through it; then ``WARM_PIPS`` rounds of one clean pip
straight from the index (for scale) and one through each cache, so that
what else the machine does falls on all alike. Measured per cache: the
cold pip's wall time and the median of its warm ones; the server's CPU
time meanwhile (with its child processes), steadier than a warm pip's
wall time, which is mostly pip's own work; and the requests that reached
the two origins (from the server's start: what a cache asks at startup
counts as cold). "Per file" divides a cache's
requests by the number of different paths it asked for; the pip with no
cache tells how many files pip needs (project pages, ``.metadata`` and
wheels). Targets: one upstream request per file cold; warm time no more
than the faster of the two peers'.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from runner import (
    HERE,
    MIB,
    ROOT,
    Bench,
    cpu_seconds,
    free_port,
    spread_sizes,
    tests_module,
)

PROJECTS = 30
#: Warm pips per run and cache, each with a clean pip: their median is the
#: warm time (one pip takes well under a second, most of it pip's own).
WARM_PIPS = 5
#: The smallest and the largest wheel; the others lie between, evenly on
#: a log scale.
SMALLEST, LARGEST = 16 * 1024, 4 * MIB
PEERS = ROOT / ".venv-bench"
PEERS_REQUIREMENTS = HERE / "peers.txt"
#: proxpi and devpi-server start in a second or two; devpi-server's first
#: start on a new folder takes longer on a slow machine.
START_TIMEOUT = 60

PC_CONF = """\
cache = "{folder}/cache"
host = "127.0.0.1"
port = {port}
verbose = 1

[[repository]]
name = "pypi"
prefix = "/pypi/"
kind = "pypi"
sources = ["{index}"]
file_sources = ["{files}"]
fresh_for = "10m"
"""


def ensure_peers() -> None:
    """Make ``.venv-bench`` with the peers of ``bench/peers.txt`` unless it
    has them already."""
    wanted = PEERS_REQUIREMENTS.read_text()
    stamp = PEERS / ".installed"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"bench: W8: installing the peers in {PEERS}", file=sys.stderr)
    if not (PEERS / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    pip = [str(PEERS / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(PEERS_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)


def clean_env() -> dict[str, str]:
    """The environment less the machine's pip settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def tree_cpu(pid: int) -> float:
    """User and system CPU seconds of a process and of its descendants."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(x) for x in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass
class Counts:
    """Requests that reached the index and the files origins, by path."""

    index_paths: Counter[str] = field(default_factory=Counter)
    files_paths: Counter[str] = field(default_factory=Counter)

    @property
    def index(self) -> int:
        return self.index_paths.total()

    @property
    def files(self) -> int:
        return self.files_paths.total()

    @property
    def total(self) -> int:
        return self.index + self.files

    @property
    def paths(self) -> int:
        """How many different files were asked for."""
        return len(self.index_paths) + len(self.files_paths)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.index_paths - other.index_paths, self.files_paths - other.files_paths
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.index_paths + other.index_paths, self.files_paths + other.files_paths
        )


@dataclass
class Result:
    """One cache's pips in one run: the cold one and the warm ones (their
    requests all together); times in seconds, the server's CPU time
    (``server_cpu``) in seconds."""

    cold: float = 0.0
    cold_cpu: float = 0.0
    cold_requests: Counts = field(default_factory=Counts)
    warms: list[float] = field(default_factory=list)
    warm_cpus: list[float] = field(default_factory=list)
    warm_requests: Counts = field(default_factory=Counts)

    @property
    def warm(self) -> float:
        return statistics.median(self.warms)

    @property
    def warm_cpu(self) -> float:
        return statistics.median(self.warm_cpus)

    def requests(self) -> str:
        cold, warm = self.cold_requests, self.warm_requests
        return f"{cold.index} + {cold.files} / {warm.index} + {warm.files}"


@dataclass
class Run:
    """One run: each cache's pips; the median time of the pips with no
    cache in the way, and the requests of one of them (the files pip
    needs)."""

    caches: dict[str, Result]
    direct: float
    needed: Counts


class Cache:
    """A cache under test: ``start`` brings up a fresh one in ``folder``
    and returns its pip index URL."""

    name = ""

    def __init__(self, w8: W8) -> None:
        self.w8 = w8
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, folder: Path) -> str:
        raise NotImplementedError

    def cpu(self) -> float:
        """CPU seconds used so far by the server and its children (proxpi's
        gunicorn serves from a worker process)."""
        assert self.process is not None
        return tree_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
            self.process = None

    def _start(
        self, args: list[str], port: int, env: dict[str, str] | None = None
    ) -> None:
        s = self.w8.bench.s
        try:
            self.process = s.start(args, port, env=env, timeout=START_TIMEOUT)
        except RuntimeError:
            log = s.work / f"server-{port}.log"
            said = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"bench: W8: {self.name} did not start:\n{said}"
            ) from None


class PackageCache(Cache):
    name = "package-cache"

    def start(self, folder: Path) -> str:
        port = free_port()
        conf = folder / "package-cache.conf"
        conf.write_text(
            PC_CONF.format(
                folder=folder,
                port=port,
                index=self.w8.index_url,
                files=self.w8.files_url,
            )
        )
        self._start([sys.executable, "-m", "pkgcache", "--config", str(conf)], port)
        return f"http://127.0.0.1:{port}/pypi/simple/"


class Proxpi(Cache):
    name = "proxpi"

    def start(self, folder: Path) -> str:
        port = free_port()
        env = {
            **clean_env(),
            "PROXPI_INDEX_URL": f"{self.w8.index_url}/simple/",
            "PROXPI_CACHE_DIR": str(folder / "cache"),
        }
        self._start(
            [
                str(PEERS / "bin" / "gunicorn"),
                "--preload",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{port}",
                "proxpi.server:app",
            ],
            port,
            env,
        )
        return f"http://127.0.0.1:{port}/index/"


class Devpi(Cache):
    name = "devpi-server"

    def start(self, folder: Path) -> str:
        port = free_port()
        server = folder / "server"
        env = clean_env()

        def run(*args: str) -> None:
            subprocess.run(
                args,
                check=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                timeout=120,
            )

        run(
            str(PEERS / "bin" / "devpi-init"),
            "--serverdir",
            str(server),
            "--no-root-pypi",
            "--root-passwd",
            "",
        )
        self._start(
            [
                str(PEERS / "bin" / "devpi-server"),
                "--serverdir",
                str(server),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            port,
            env,
        )
        url = f"http://127.0.0.1:{port}"
        client = [str(PEERS / "bin" / "devpi"), "--clientdir", str(folder / "client")]
        run(*client, "use", url)
        run(*client, "login", "root", "--password", "")
        run(
            *client,
            "index",
            "-c",
            "root/pypi",
            "type=mirror",
            f"mirror_url={self.w8.index_url}/simple/",
        )
        return f"{url}/root/pypi/+simple/"


def run(bench: Bench) -> None:
    w8 = W8(bench)
    try:
        w8.run()
    finally:
        w8.close()


class W8:
    """The test index, the three caches and the pips."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.w8 = bench.s.work / "w8"
        self.w8.mkdir()
        pypirepo = tests_module("pypirepo")
        repo = pypirepo.PypiRepo(self.w8 / "repo")
        self.names = [f"w8pkg{n:02d}" for n in range(PROJECTS)]
        for name, size in zip(
            self.names, spread_sizes(SMALLEST, LARGEST, PROJECTS), strict=True
        ):
            repo.add_wheel(name, "1.0", payload=size)
        self.digests = {d.filename: d.sha256 for d in repo.dists()}
        self._stack = contextlib.ExitStack()
        self.index, self.files = self._stack.enter_context(pypirepo.serve(repo))
        self.index_url = self.index.url
        self.files_url = self.files.url
        self.caches: list[Cache] = [PackageCache(self), Proxpi(self), Devpi(self)]
        self.seq = itertools.count()

    def close(self) -> None:
        for cache in self.caches:
            cache.stop()
        self._stack.close()

    def counts(self) -> Counts:
        return Counts(Counter(self.index.requests), Counter(self.files.requests))

    def pip(self, index_url: str) -> float:
        """One clean ``pip download`` of every project; its wall time."""
        into = self.w8 / f"pip-{next(self.seq)}"
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--isolated",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--no-deps",
                "--quiet",
                "-d",
                str(into),
                "--index-url",
                index_url,
                *self.names,
            ],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"bench: W8: pip download from {index_url} failed:\n"
                + (done.stdout + done.stderr)[-3000:]
            )
        got = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in into.iterdir()
        }
        if got != self.digests:
            raise RuntimeError(f"bench: W8: pip from {index_url} got other files")
        shutil.rmtree(into)
        return seconds

    def once(self, turn: int) -> Run:
        """Each cache started fresh and asked cold, one after the other (who
        goes first takes turns); then rounds of warm pips, one through each
        cache and one with no cache in each round, so that whatever else
        the machine does falls on all of them alike."""
        order = self.caches[turn % 3 :] + self.caches[: turn % 3]
        caches = {c.name: Result() for c in self.caches}
        urls: dict[str, str] = {}
        direct: list[float] = []
        needed = Counts()
        try:
            for cache in order:
                r = caches[cache.name]
                folder = self.w8 / f"{cache.name}-{turn}"
                folder.mkdir()
                before = self.counts()
                urls[cache.name] = cache.start(folder)
                cpu = cache.cpu()
                r.cold = self.pip(urls[cache.name])
                r.cold_cpu = cache.cpu() - cpu
                r.cold_requests = self.counts() - before
            for n in range(WARM_PIPS):
                before = self.counts()
                direct.append(self.pip(f"{self.index_url}/simple/"))
                if n == 0:
                    needed = self.counts() - before
                for cache in order:
                    r = caches[cache.name]
                    before, cpu = self.counts(), cache.cpu()
                    r.warms.append(self.pip(urls[cache.name]))
                    r.warm_cpus.append(cache.cpu() - cpu)
                    r.warm_requests += self.counts() - before
        finally:
            for cache in order:
                cache.stop()
                shutil.rmtree(self.w8 / f"{cache.name}-{turn}", ignore_errors=True)
        run = Run(caches, statistics.median(direct), needed)
        for name in (c.name for c in self.caches):
            r = caches[name]
            print(
                f"bench: W8 {name}: cold {r.cold:.2f} s ({r.cold_cpu:.2f} s CPU), "
                f"warm {r.warm:.2f} s ({r.warm_cpu:.2f} s CPU); upstream "
                f"requests (index + files) cold / warm {r.requests()}",
                file=sys.stderr,
            )
        print(
            f"bench: W8 no cache: {run.direct:.2f} s, {run.needed.total} requests",
            file=sys.stderr,
        )
        return run

    def run(self) -> None:
        runs = [self.once(turn) for turn in range(self.bench.runs)]
        pc, *peers = (c.name for c in self.caches)
        record = self.bench.record
        first = f"W8 pip download of {PROJECTS} wheels (cold, then warm)"
        for peer in peers:
            record(
                first,
                f"cold time: package-cache / {peer}",
                [r.caches[pc].cold / r.caches[peer].cold for r in runs],
                "-",
            )
            first = "W8"
        record(
            "W8",
            f"warm time: package-cache / the faster of {' and '.join(peers)}",
            [r.caches[pc].warm / min(r.caches[p].warm for p in peers) for r in runs],
            "<= 1",
        )
        for peer in peers:
            record(
                "W8",
                f"warm time: package-cache / {peer}",
                [r.caches[pc].warm / r.caches[peer].warm for r in runs],
                "-",
            )
        for peer in peers:
            record(
                "W8",
                f"server CPU per warm pip: package-cache / {peer}",
                [r.caches[pc].warm_cpu / r.caches[peer].warm_cpu for r in runs],
                "-",
            )
        for peer in peers:
            record(
                "W8",
                f"cold upstream requests: package-cache / {peer}",
                [
                    r.caches[pc].cold_requests.total
                    / max(1, r.caches[peer].cold_requests.total)
                    for r in runs
                ],
                "-",
            )
        for name in (pc, *peers):
            record(
                "W8",
                f"cold upstream requests per file asked upstream: {name}",
                [
                    r.caches[name].cold_requests.total
                    / max(1, r.caches[name].cold_requests.paths)
                    for r in runs
                ],
                "1" if name == pc else "-",
            )
        for name in (pc, *peers):
            record(
                "W8",
                f"upstream requests (index + files), cold / warm: {name}",
                [r.caches[name].requests() for r in runs],
                "-",
            )
        for name in (pc, *peers):
            record(
                "W8", f"cold seconds: {name}", [r.caches[name].cold for r in runs], "-"
            )
            record(
                "W8", f"warm seconds: {name}", [r.caches[name].warm for r in runs], "-"
            )
        for name in (pc, *peers):
            record(
                "W8",
                f"server CPU ms, cold / warm pip: {name}",
                [
                    f"{r.caches[name].cold_cpu * 1000:.0f} / "
                    f"{r.caches[name].warm_cpu * 1000:.0f}"
                    for r in runs
                ],
                "-",
            )
        record(
            "W8",
            "seconds: no cache (pip straight from the index)",
            [r.direct for r in runs],
            "-",
        )
        record(
            "W8",
            "requests of pip straight from the index (the files pip needs)",
            [float(r.needed.total) for r in runs],
            "-",
            "{:.0f}",
        )
