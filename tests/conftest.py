"""Shared fixtures: a real origin, the real proxy process, a plain client."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.origin import Origin

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``condition`` (a test helper only; the server never polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table ([[repository]] as a list)
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class Proxy:
    """package-cache running as a real process (``python -m pkgcache``)."""

    def __init__(
        self,
        tmp: Path,
        sources: list[str],
        command: list[str] | None = None,
        fsize_limit: int | None = None,
        # Soft and hard RLIMIT_NOFILE of the process (to run it out of them).
        nofile: int | None = None,
        **settings: Any,
    ) -> None:
        """``fsize_limit``: RLIMIT_FSIZE of the process (to fake a full disk)."""
        self.command = command or [sys.executable, "-m", "pkgcache"]
        self.fsize_limit = fsize_limit
        self.nofile = nofile
        self.port = free_port()
        self.cache = tmp / "cache"
        self.log_path = tmp / f"proxy-{self.port}.log"
        self.config = tmp / f"proxy-{self.port}.conf"
        #: Seconds added to the daemon's clock (``advance``): tests move
        #: time on past ``fresh_for`` instead of sleeping.
        self.clock_file = tmp / f"proxy-{self.port}.clock"
        self.clock_offset = 0.0
        self._clock_stamp = 0
        values = {
            "sources": sources,
            "cache": str(self.cache),
            "host": "127.0.0.1",
            "port": self.port,
            "verbose": 3,
            "stall_timeout": 3,
            "connect_timeout": 3,
            **settings,
        }
        self.settings = values
        self.write_config(**values)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        started = self.start_lines()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--config", str(self.config)],
                cwd=ROOT,
                env={**os.environ, "PKGCACHE_CLOCK_OFFSET_FILE": str(self.clock_file)},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limits,
            )

        # The sockets are bound before the slow start-up work, so the start
        # line (logged at every verbosity) says when the daemon serves.
        def ready() -> bool:
            return self._accepting() and self.start_lines() > started

        if not wait_until(ready, timeout=15):
            self.stop()
            raise RuntimeError(f"proxy did not start:\n{self.log()}")
        return self

    def start_lines(self) -> int:
        """How many times the daemon has said it serves (its start line)."""
        return sum(
            "pkgcache.notice: package-cache " in line and " serving " in line
            for line in self.log().splitlines()
        )

    def _limits(self) -> None:
        """In the child: room for many connections, and the file size limit."""
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        if self.fsize_limit is not None:
            limit = (self.fsize_limit, self.fsize_limit)
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"proxy exited:\n{self.log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.send(signal.SIGTERM)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def advance(self, seconds: float) -> None:
        """Move the daemon's clock on by ``seconds`` (its freshness,
        negative answers and stale limits see the time pass at once)."""
        self.clock_offset += seconds
        temporary = self.clock_file.with_suffix(".new")
        temporary.write_text(repr(self.clock_offset))
        # The daemon re-reads the file when its modification time changes,
        # and two writes within one timestamp tick (the inode number may be
        # reused too) would look the same: each write gets a later one.
        self._clock_stamp = max(time.time_ns(), self._clock_stamp + 1000)
        os.utime(temporary, ns=(self._clock_stamp, self._clock_stamp))
        os.replace(temporary, self.clock_file)

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def write_config(self, **settings: Any) -> None:
        """Rewrite the config file (for SIGHUP tests)."""
        self.config.write_text(
            "".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items())
        )

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def rss_peak_kib(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1])

    def cached(self, path: str) -> Path:
        return self.cache / path.lstrip("/")

    def partials(self) -> list[str]:
        folder = self.cache / ".partial"
        return os.listdir(folder) if folder.exists() else []

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            body = response.read()
            return Response(response.status, response.headers, body)
        finally:
            conn.close()

    def open(self, path: str, timeout: float = 30) -> http.client.HTTPResponse:
        """Start a GET and return the response with its body unread."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("GET", path)
        return conn.getresponse()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    yield server
    server.stop()


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[Any]:
    """``make_proxy(sources, **settings)`` starts a proxy, stopped after the test."""
    started: list[Proxy] = []

    def make(sources: list[str], **settings: Any) -> Proxy:
        proxy = Proxy(tmp_path, sources, **settings).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
        # Whatever a test did, the server must never have crashed inside.
        assert "Traceback" not in proxy.log(), proxy.log()


@pytest.fixture
def proxy(origin: Origin, make_proxy: Any) -> Proxy:
    """A proxy whose one source is the origin's well-behaved mode."""
    return make_proxy([origin.source("ok")])
