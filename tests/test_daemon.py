"""The installed daemon: signals, reload, listening, allow list."""

from __future__ import annotations

import http.client
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until
from tests.origin import content


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> list[str]:
    """Build the wheel, install it in a fresh venv, return its console script."""
    work = tmp_path_factory.mktemp("install")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(work / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((work / "dist").glob("package_cache-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=120
    )
    subprocess.run(
        [str(work / "venv/bin/pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    script = work / "venv" / "bin" / "package-cache"
    assert script.exists()
    return [str(script)]


@pytest.fixture
def daemon(origin, make_proxy, installed):
    return make_proxy([origin.source("ok")], command=installed)


def test_installed_daemon_serves_a_miss_and_a_hit(daemon, origin):
    path = "/files/20000/installed.tar"
    assert daemon.request(path).body == content("installed.tar", 20000)
    hit = daemon.request(path)
    assert hit.headers["X-Package-Cache"] == "hit"
    assert origin.count("ok", 20000, "installed.tar") == 1
    assert daemon.stop() == 0


def test_sighup_applies_a_new_source_list_to_the_next_miss(daemon, origin):
    daemon.write_config(**{**daemon.settings, "sources": [origin.source("e404")]})
    daemon.send(signal.SIGHUP)
    assert wait_until(lambda: "reloaded settings" in daemon.log())
    assert daemon.request("/files/100/after-reload.tar").status == 404
    assert origin.count("e404", 100, "after-reload.tar") == 1
    assert origin.count("ok", 100, "after-reload.tar") == 0


def test_sighup_with_a_broken_file_keeps_serving_with_old_settings(daemon, origin):
    daemon.request("/files/100/before.tar")
    daemon.config.write_text("sources = [\n")
    daemon.send(signal.SIGHUP)
    assert wait_until(lambda: "reload failed" in daemon.log())
    assert daemon.process.poll() is None
    assert daemon.request("/files/100/before.tar").status == 200
    assert daemon.request("/files/100/after.tar").body == content("after.tar", 100)


def test_sigterm_during_a_download_exits_0_and_leaves_nothing(
    origin, make_proxy, installed
):
    origin.rate = 500_000
    proxy = make_proxy([origin.source("slow")], command=installed, shutdown_grace=1)
    path = "/files/5000000/interrupted.tar"
    response = proxy.open(path)
    response.read(100000)
    assert proxy.partials() != []
    proxy.send(signal.SIGTERM)
    assert proxy.process.wait(20) == 0
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    assert proxy.partials() == []
    assert not proxy.cached(path).exists()


def test_sigterm_lets_a_download_finish_within_the_grace_period(origin, make_proxy):
    origin.rate = 1_000_000
    proxy = make_proxy([origin.source("slow")], shutdown_grace=20)
    path = "/files/1500000/graceful.tar"
    response = proxy.open(path)
    response.read(1000)
    proxy.send(signal.SIGTERM)
    assert response.read() == content("graceful.tar", 1500000)[1000:]
    assert proxy.process.wait(20) == 0
    assert proxy.cached(path).exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()


def test_clients_outside_allow_get_403_and_a_log_line(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], allow=["127.0.0.1/32"])
    assert proxy.request("/files/10/allowed.tar").status == 200
    conn = http.client.HTTPConnection(
        "127.0.0.1", proxy.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    conn.request("GET", "/files/10/denied.tar")
    assert conn.getresponse().status == 403
    conn.close()
    assert origin.count("ok", 10, "denied.tar") == 0
    # A cached file is refused too (small hits take a shorter way).
    conn = http.client.HTTPConnection(
        "127.0.0.1", proxy.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    conn.request("GET", "/files/10/allowed.tar")
    assert conn.getresponse().status == 403
    conn.close()
    assert "refused client 127.0.0.2" in proxy.log()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_listens_on_ipv4_and_ipv6(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], host=["127.0.0.1", "::1"])
    conn = http.client.HTTPConnection("::1", proxy.port, timeout=10)
    conn.request("GET", "/files/10/v6.tar")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == content("v6.tar", 10)
    conn.close()
    assert proxy.request("/files/10/v6.tar").headers["X-Package-Cache"] == "hit"


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_port_taken_on_one_of_several_addresses_refuses_to_start(tmp_path: Path):
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pkgcache",
                "--source",
                "http://127.0.0.1:9",
                "--cache",
                str(tmp_path / "c"),
                "--host",
                "127.0.0.1,::1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert f"cannot listen on ::1 port {port}" in result.stderr


def test_a_burst_of_connections_is_queued_not_dropped(proxy):
    """A build farm connecting at once: while the server is busy (here:
    stopped), the kernel completes and queues up to 1024 connections
    instead of dropping SYNs, which would make clients wait 1 s or more
    for a retransmit (tornado's default backlog is 128)."""
    burst = 600
    somaxconn = Path("/proc/sys/net/core/somaxconn")
    if somaxconn.exists() and int(somaxconn.read_text()) <= burst:
        pytest.skip("net.core.somaxconn caps the backlog below the burst")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < burst + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, burst + 400), hard))
    waiting = selectors.DefaultSelector()
    sockets = []
    os.kill(proxy.process.pid, signal.SIGSTOP)
    try:
        for _ in range(burst):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", proxy.port))
            sockets.append(sock)
            waiting.register(sock, selectors.EVENT_WRITE)
        connected = 0
        deadline = time.monotonic() + 3
        while connected < burst and time.monotonic() < deadline:
            for key, _ in waiting.select(timeout=0.2):
                waiting.unregister(key.fileobj)
                error = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                connected += error == 0
        assert connected == burst
    finally:
        os.kill(proxy.process.pid, signal.SIGCONT)
        waiting.close()
        for sock in sockets:
            sock.close()
    assert proxy.request("/files/10/after-burst.tar").status == 200
