"""Out of file descriptors: the server pauses accepting, logs it once and
recovers, instead of a traceback per accept() in a busy loop
(``pkgcache/accepting.py``); its own descriptor limit at start-up."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Proxy, wait_until
from tests.origin import content

#: RLIMIT_NOFILE of the proxy, and more idle clients than that.
NOFILE = 256
IDLE = 300


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files_limits(pid: int) -> tuple[int, int]:
    """The soft and hard "Max open files" of a running process."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()
    return int(soft), int(hard)


@pytest.fixture
def room_for_clients() -> None:
    """This test process holds IDLE sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 200:
        if hard < IDLE + 200:
            pytest.skip("RLIMIT_NOFILE too low for the idle clients")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.mark.usefixtures("room_for_clients")
@pytest.mark.serial
def test_out_of_descriptors_pauses_accepting_and_recovers(origin, make_proxy):
    proxy: Proxy = make_proxy([origin.source("ok")], nofile=NOFILE)
    assert proxy.process is not None
    before = proxy.log_path.stat().st_size
    cpu_before = cpu_seconds(proxy.process.pid)
    idle: list[socket.socket] = []
    try:
        # The kernel completes every handshake (backlog 1024); the proxy
        # accepts until its descriptors run out, the rest wait in the queue.
        for _ in range(IDLE):
            idle.append(socket.create_connection(("127.0.0.1", proxy.port), 5))
        assert wait_until(
            lambda: "out of file desc" in proxy.log()[before:], timeout=60
        ), proxy.log()[before:][:3000]
        # A window in which a busy accept loop would burn CPU and log.
        time.sleep(1)
        assert proxy.process.poll() is None
        grown = proxy.log_path.stat().st_size - before
        text = proxy.log()[before:]
        assert grown < 20_000, text[:3000]
        assert "Traceback" not in text, text[:3000]
        paused = [line for line in text.splitlines() if "out of file desc" in line]
        assert 1 <= len(paused) <= 2, text[:3000]
        assert f"limit {NOFILE}" in paused[0]
        assert "not accepting connections on 127.0.0.1:" in paused[0]
        # Paused, not spinning on a readable listening socket.
        assert cpu_seconds(proxy.process.pid) - cpu_before < 0.5
    finally:
        for sock in idle:
            sock.close()
    start = time.monotonic()
    response = proxy.request("/files/100/x.tar", timeout=10)
    assert response.status == 200
    assert response.body == content("x.tar", 100)
    assert time.monotonic() - start < 5
    recovered = re.compile(r"accepting connections on 127\.0\.0\.1:\d+ again")
    assert wait_until(lambda: recovered.search(proxy.log()), timeout=5)
    assert len(proxy.log()) - before < 20_000


def test_soft_descriptor_limit_is_raised_to_the_hard_one(origin, make_proxy):
    """Started with a soft limit of 512 (systemd's default soft limit is
    1024), the server raises it to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 512:
        pytest.skip("hard RLIMIT_NOFILE too low")
    lowered = [
        "sh",
        "-c",
        'ulimit -Sn 512 && exec "$0" -m pkgcache "$@"',
        sys.executable,
    ]
    proxy = make_proxy([origin.source("ok")], command=lowered)
    assert proxy.process is not None
    soft_now, hard_now = open_files_limits(proxy.process.pid)
    assert soft_now == hard_now > 512
    assert f"descriptor limit {hard_now} (raised from 512)" in proxy.log()
    assert proxy.request("/files/100/raised.tar").status == 200


def test_sigterm_stops_accepting_at_once(origin, make_proxy):
    """Shutdown closes the listening socket while a download still runs in
    its grace period (the accept loop is ours, not tornado's)."""
    origin.rate = 500_000
    proxy = make_proxy([origin.source("slow")], shutdown_grace=20)
    response = proxy.open("/files/2000000/graceful.tar")
    response.read(1000)
    proxy.send(signal.SIGTERM)
    assert wait_until(lambda: "stopping:" in proxy.log(), timeout=5)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    assert wait_until(refused, timeout=5)
    assert proxy.process is not None and proxy.process.poll() is None
    assert response.read() == content("graceful.tar", 2000000)[1000:]
    assert proxy.process.wait(20) == 0


def test_source_credentials_stay_out_of_the_start_and_reload_lines(origin, make_proxy):
    secret = origin.source("ok").replace("http://", "http://mirror:s3cret@")
    proxy = make_proxy([secret])
    proxy.send(signal.SIGHUP)
    assert wait_until(lambda: "reloaded settings" in proxy.log(), timeout=5)
    lines = [
        line
        for line in proxy.log().splitlines()
        if " serving " in line or "reloaded settings" in line
    ]
    assert len(lines) == 2, lines
    for line in lines:
        assert "s3cret" not in line and "http://mirror:***@127.0.0.1:" in line
