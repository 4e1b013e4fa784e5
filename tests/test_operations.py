"""Running the daemon day to day: the cache folder's lock, the start and
stop lines at the default verbosity, start-up warnings, the 404 of a path
under no prefix, and the tools that take the cache from ``--config``."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkgcache import __version__
from tests.conftest import ROOT, wait_until
from tests.rawserver import RawServer

HELD_SIZE = 300_000
HELD_BODY = bytes(range(256)) * (HELD_SIZE // 256) + b"x" * (HELD_SIZE % 256)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkgcache", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


class HeldOrigin:
    """Sends the head and the first half of ``HELD_BODY``, then waits for
    ``release`` before the rest: a download that stays in flight exactly
    as long as the test needs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.server = RawServer(self._respond).start()

    def _respond(self, conn: socket.socket, _head: bytes, _index: int) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {HELD_SIZE}\r\nConnection: close\r\n\r\n".encode()
            + HELD_BODY[: HELD_SIZE // 2]
        )
        self.release.wait(120)
        conn.sendall(HELD_BODY[HELD_SIZE // 2 :])


@pytest.fixture
def held() -> Iterator[HeldOrigin]:
    origin = HeldOrigin()
    yield origin
    origin.release.set()
    origin.server.stop()


def test_a_second_daemon_cull_and_verify_remove_leave_a_live_cache_alone(
    held: HeldOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([held.server.url], stall_timeout=180)
    path = "/pool/held.deb"
    response = proxy.open(path)
    assert response.read(1000) == HELD_BODY[:1000]
    assert wait_until(lambda: proxy.partials() != [])
    partials = proxy.partials()
    holder = f"pid {proxy.process.pid}"

    second = run("--config", str(proxy.config))
    assert second.returncode == 2, second.stderr
    assert holder in one_line(second) and "in use" in one_line(second)
    culled = run("cull", "--config", str(proxy.config), "--max-size", "0")
    assert culled.returncode == 2 and holder in one_line(culled)
    removing = run("verify", "--config", str(proxy.config), "--remove")
    assert removing.returncode == 2 and holder in one_line(removing)
    reading = run("verify", "--config", str(proxy.config))
    assert reading.returncode == 0, reading.stderr
    assert proxy.partials() == partials

    held.release.set()
    assert HELD_BODY[:1000] + response.read() == HELD_BODY
    assert wait_until(lambda: proxy.cached(path).exists())
    assert proxy.cached(path).read_bytes() == HELD_BODY
    assert proxy.request(path).headers["X-Package-Cache"] == "hit"
    assert "No such file" not in proxy.log()


def test_start_and_stop_lines_and_warnings_show_at_verbosity_0(
    make_proxy: Any,
) -> None:
    files = {"name": "files", "prefix": "/files/", "sources": ["http://127.0.0.1:9"]}
    pypi = {
        "name": "pypi",
        "prefix": "/pypi/",
        "kind": "pypi",
        "sources": ["https://pypi.org"],
    }
    proxy = make_proxy([], verbose=0, repository=[files, pypi])
    log = proxy.log()
    start = [line for line in log.splitlines() if " serving " in line]
    assert len(start) == 1, log
    assert f"INFO pkgcache.notice: package-cache {__version__} serving" in start[0]
    assert f"{proxy.cache} on 127.0.0.1:{proxy.port}" in start[0]
    assert "files (generic) /files/ from http://127.0.0.1:9" in start[0]
    assert "pypi (pypi) /pypi/ from https://pypi.org" in start[0]
    assert not start[0].rstrip().endswith("from"), start[0]
    assert "'pypi' (pypi) has no file_sources" in log
    assert 'file_sources = ["https://files.pythonhosted.org"]' in log
    assert proxy.stop() == 0
    log = proxy.log()
    assert "INFO pkgcache.notice: stopping: 0 requests in flight" in log
    assert f"package-cache {__version__} stopped" in log


def test_a_path_under_no_prefix_names_the_prefixes_to_status_clients_only(
    make_proxy: Any,
) -> None:
    files = {"name": "files", "prefix": "/files/", "sources": ["http://127.0.0.1:9"]}
    debian = {"name": "deb", "prefix": "/debian/", "sources": ["http://127.0.0.1:9"]}
    proxy = make_proxy([], repository=[files, debian], status_allow=["127.0.0.1/32"])
    told = proxy.request("/ubuntu/dists/noble/Release")
    assert told.status == 404
    assert b"/files/, /debian/" in told.body, told.body
    conn = http.client.HTTPConnection(
        "127.0.0.1", proxy.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    conn.request("GET", "/ubuntu/dists/noble/Release")
    plain = conn.getresponse()
    assert plain.status == 404
    assert plain.read() == b"404 Not Found\n"
    conn.close()


def test_port_taken_is_one_line_before_the_cache_is_touched(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    (cache / ".partial").mkdir(parents=True)
    left_over = cache / ".partial" / "dl-left-over"
    left_over.write_bytes(b"a download of a daemon that crashed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "--source",
            "http://127.0.0.1:9",
            "--cache",
            str(cache),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in one_line(result)
    assert left_over.exists()


def test_cull_and_verify_take_the_cache_from_the_config(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "distfiles").mkdir(parents=True)
    (cache / "distfiles" / "a.tar").write_bytes(b"a" * 100)
    # A lock file a stopped daemon left: not held, never counted or culled.
    (cache / ".lock").write_text("12345\n")
    conf = tmp_path / "pc.conf"
    conf.write_text(f'sources = ["http://127.0.0.1:9"]\ncache = "{cache}"\n')

    checked = run("verify", "--config", str(conf))
    assert checked.returncode == 0, checked.stderr
    assert "0 files checked, 0 wrong, 1 with no known digest" in checked.stdout
    culled = run("cull", "--config", str(conf), "--max-size", "0")
    assert culled.returncode == 0, culled.stderr
    assert "removed 1 files, 100 bytes" in culled.stdout
    assert not (cache / "distfiles").exists()
    assert (cache / ".lock").exists()

    neither = run("cull", "--max-size", "0")
    assert neither.returncode == 2
    assert "give --cache or --config" in one_line(neither)
