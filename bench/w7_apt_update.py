"""W7 apt-get update after the indexes changed: twenty ``apt-get update``
clients at once, each with lists of its own, through package-cache and
through apt-cacher-ng, on one local signed repository whose indexes have
just gone stale in both caches.

The repository (a few packages, ``Packages``, ``Packages.gz``, ``Release``
and a clear-signed ``InRelease``) is built with ``tests/aptrepo.py`` and
served by an nginx of its own at ``/debian/``, whose access log counts the
requests and body bytes that reach the origin. package-cache serves it as a
``[[repository]]`` of kind ``debian`` with ``fresh_for = "2s"``;
apt-cacher-ng as a ``Remap-`` rule with ``FreshIndexMaxAge: 2``, in the
foreground, with a config folder, cache and logs of its own in the bench's
temporary folder (the system's apt-cacher-ng service, which Debian starts
on port 3142 when it installs the package, is never used).

Each run: one client through each cache warms it; the repository publishes
a new version of a package, so ``InRelease`` and ``Packages*`` change; the
bench waits past both freshness times; then twenty fresh clients update at
once through one cache, and then through the other (who goes first
alternates). Measured per cache: upstream requests and bytes (the origin's
log), the time until all twenty are done, and how many clients got the new
``InRelease``; and, for scale, twenty clients straight from the origin:
on a small machine apt-get's own work (gpgv, parsing the lists) is most of
the time. Target: one upstream request per index file, and no slower than
apt-cacher-ng.

The clients retry a failed download three times, apt's default (the
scratch clients of ``tests/aptrepo.py`` do not retry). apt-cacher-ng 3.7.4
checks a stale index with one request per client (``Range`` of the last
byte with ``If-Range``), and its concurrent refreshes of one file in the
same second collide on a temporary name ("Failure to move file ... out of
the way" in ``apt-cacher.err``, a 503 or a closed connection for the
client): those clients get the file on a retry, later.

apt-cacher-ng 3.7.4 can neither listen on a port above 32767 nor fetch from
one, so its port and the origin's are picked below the ephemeral range
(``runner.low_port``).
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from runner import ROOT, Bench, Servers, free_port, low_port, nginx_binary

CLIENTS = 20
#: package-cache's fresh_for and apt-cacher-ng's FreshIndexMaxAge, seconds.
FRESH_FOR = 2
PACKAGES = 8
#: apt's default since 2.3 (with a growing delay between tries).
APT_RETRIES = 3

NGINX_CONF = """
worker_processes 1;
pid {w7}/nginx.pid;
error_log {w7}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format w7 '$request_method $uri $status $body_bytes_sent '
                  '"$http_if_modified_since" "$http_if_none_match" '
                  '"$http_range" "$http_if_range" "$http_user_agent"';
    access_log {w7}/origin-access.log w7;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /debian/ {{ alias {repo}/; {extra} }}
    }}
}}
"""

PC_CONF = """\
cache = "{w7}/pc-cache"
host = "127.0.0.1"
port = {port}
verbose = 1

[[repository]]
name = "debian"
prefix = "/debian/"
kind = "debian"
sources = ["http://127.0.0.1:{origin}/debian"]
fresh_for = "{fresh}s"
"""


def _aptrepo() -> ModuleType:
    """tests/aptrepo.py, loaded by path (the bench does not import tests)."""
    spec = importlib.util.spec_from_file_location(
        "aptrepo", ROOT / "tests" / "aptrepo.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Phase:
    """What one cache cost for one round of clients."""

    requests: int
    bytes: int
    paths: set[str]
    seconds: float
    got_new: int
    failed: list[str]


class Origin:
    """The repository's nginx; its access log tells what reached it."""

    def __init__(self, s: Servers, w7: Path, repo: Path, extra: str = "") -> None:
        """``extra``: more nginx directives for the repository's location
        (W11 paces it like a distant mirror)."""
        self.port = low_port()
        self.log = w7 / "origin-access.log"
        conf = w7 / "origin-nginx.conf"
        conf.write_text(
            NGINX_CONF.format(w7=w7, port=self.port, repo=repo, extra=extra)
        )
        s.start([nginx_binary(), "-c", str(conf), "-g", "daemon off;"], self.port)
        self._offset = 0

    def since_last(self) -> list[str]:
        """The log lines written since the previous call."""
        with open(self.log, "rb") as file:
            file.seek(self._offset)
            data = file.read()
        self._offset += len(data)
        return data.decode(errors="replace").splitlines()


def run(bench: Bench) -> None:
    apt = _aptrepo()
    # gpg-agent puts its socket in GNUPGHOME: keep that path short.
    gnupghome = Path(tempfile.mkdtemp(prefix="pc-w7-gpg-"))
    repo = apt.AptRepo(bench.s.files / "w7-debian", gnupghome)
    try:
        for n in range(PACKAGES):
            repo.add_package(f"w7pkg{n}", "1.0")
        repo.publish()
        W7(bench, apt, repo).run()
    finally:
        repo.close()
        shutil.rmtree(gnupghome, ignore_errors=True)


class W7:
    """The origin, both caches and their clients."""

    def __init__(self, bench: Bench, apt: ModuleType, repo: Any) -> None:
        self.bench = bench
        self.apt = apt
        self.repo = repo
        s = bench.s
        self.w7 = w7 = s.work / "w7"
        w7.mkdir()
        self.origin = Origin(s, w7, repo.root)
        acng_port = s.apt_cacher_ng(
            "w7-acng",
            f"FreshIndexMaxAge: {FRESH_FOR}\n"
            f"Remap-w7debian: /debian ; http://127.0.0.1:{self.origin.port}/debian\n",
        )
        pc_port = free_port()
        pc_conf = w7 / "package-cache.conf"
        pc_conf.write_text(
            PC_CONF.format(
                w7=w7, port=pc_port, fresh=FRESH_FOR, origin=self.origin.port
            )
        )
        self._start(
            [sys.executable, "-m", "pkgcache", "--config", str(pc_conf)],
            pc_port,
            "package-cache",
        )
        self.caches = {"package-cache": pc_port, "apt-cacher-ng": acng_port}
        self.seq = itertools.count()

    def _start(self, args: list[str], port: int, what: str) -> None:
        try:
            self.bench.s.start(args, port)
        except RuntimeError:
            log = self.bench.s.work / f"server-{port}.log"
            said = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"bench: W7: {what} did not start:\n{said}") from None

    def clients(self, port: int, count: int) -> list[Any]:
        """``count`` apt clients with fresh state, through the cache at ``port``."""
        line = (
            f"deb [signed-by={self.repo.keyring}] "
            f"http://127.0.0.1:{port}/debian/ stable main"
        )
        folder = self.w7 / "clients"
        return [
            self.apt.AptClient(folder / f"c{next(self.seq)}", line)
            for _ in range(count)
        ]

    def once(self, pc_first: bool) -> list[float]:
        for port in self.caches.values():
            self.clients(port, 1)[0].update()
        self.origin.since_last()
        # Last-Modified has whole seconds: let the new files be a second newer.
        time.sleep(1.1)
        self.repo.add_package("w7pkg0", f"1.{next(self.seq)}")
        self.repo.publish()
        time.sleep(FRESH_FOR + 1)
        new = (self.repo.dists / "InRelease").read_bytes()
        order = list(self.caches)[:: 1 if pc_first else -1]
        phases = {
            name: self.phase(self.clients(self.caches[name], CLIENTS), new)
            for name in order
        }
        # For scale: apt-get's own work, with no cache in the way.
        phases["no cache"] = self.phase(self.clients(self.origin.port, CLIENTS), new)
        for name, phase in phases.items():
            print(
                f"bench: W7 {name}: {phase.requests} upstream requests "
                f"({len(phase.paths)} paths), {phase.bytes} bytes, "
                f"{phase.seconds:.2f} s, "
                f"{phase.got_new}/{CLIENTS} got the new InRelease, "
                f"{len(phase.failed)} failed",
                file=sys.stderr,
            )
            if phase.failed:
                lines = phase.failed[0].splitlines()
                shown = [x for x in lines if self.apt.FAILURE.search(x)][:3]
                print(f"bench: W7 {name}: {' | '.join(shown)}", file=sys.stderr)
        pc, acng = phases["package-cache"], phases["apt-cacher-ng"]
        return [
            pc.requests / max(1, acng.requests),
            pc.bytes / max(1, acng.bytes),
            pc.seconds / acng.seconds,
            pc.requests / max(1, len(pc.paths)),
            acng.requests / max(1, len(acng.paths)),
            pc.requests,
            acng.requests,
            pc.bytes,
            acng.bytes,
            pc.seconds,
            acng.seconds,
            pc.got_new,
            acng.got_new,
            phases["no cache"].seconds,
            pc.seconds / phases["no cache"].seconds,
        ]

    def phase(self, clients: list[Any], new: bytes) -> Phase:
        """Every client's ``apt-get update`` at once, and what reached the
        origin meanwhile."""
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                # tests/aptrepo.py turns retries off; a real client retries.
                ["apt-get", "-o", f"Acquire::Retries={APT_RETRIES}", "update"],
                cwd=client.folder,
                env=client.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for client in clients
        ]
        said = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
        seconds = time.monotonic() - started
        failed = [
            out
            for proc, out in zip(procs, said, strict=True)
            if proc.returncode != 0 or self.apt.FAILURE.search(out)
        ]
        got_new = sum(
            any(path.read_bytes() == new for path in c.folder.glob("lists/*InRelease"))
            for c in clients
        )
        requests, sent, paths = 0, 0, set()
        for line in self.origin.since_last():
            _method, path, _status, size = line.split(" ", 4)[:4]
            requests += 1
            sent += int(size)
            paths.add(path)
        return Phase(requests, sent, paths, seconds, got_new, failed)

    def run(self) -> None:
        first = itertools.cycle([True, False])
        cols = self.bench.repeat(lambda: self.once(next(first)))
        record = self.bench.record
        record(
            f"W7 {CLIENTS} apt-get update after the indexes changed",
            "upstream requests: package-cache / apt-cacher-ng",
            cols[0],
            "-",
        )
        record("W7", "upstream bytes: package-cache / apt-cacher-ng", cols[1], "-")
        record("W7", "time to all done vs apt-cacher-ng", cols[2], "<= 1")
        record("W7", "time to all done vs no cache", cols[14], "-")
        record("W7", "upstream requests per index file: package-cache", cols[3], "1")
        record("W7", "upstream requests per index file: apt-cacher-ng", cols[4], "-")
        for offset, what, fmt in (
            (5, "upstream requests", "{:.0f}"),
            (7, "upstream bytes", "{:.0f}"),
            (9, "seconds to all done", "{:.2f}"),
            (11, f"clients of {CLIENTS} with the new InRelease", "{:.0f}"),
        ):
            target = str(CLIENTS) if offset == 11 else "-"
            for index, who in enumerate(("package-cache", "apt-cacher-ng")):
                record("W7", f"{what}: {who}", cols[offset + index], target, fmt)
        record(
            "W7",
            "seconds to all done: no cache (straight from the origin)",
            cols[13],
            "-",
        )
