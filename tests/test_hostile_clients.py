"""Clients that misbehave: huge request bodies, readers that never read,
stale If-Range, HTTP/1.0 on a broken download."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import wait_until
from tests.origin import LAST_MODIFIED, content

MIB = 1024 * 1024


def _send_body(port: int, path: str, size: int, results: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        block = b"\0" * MIB
        sent = 0
        try:
            while sent < size:
                sent += sock.send(block[: min(MIB, size - sent)])
        except OSError:
            pass  # refused early: the status tells
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    results.append(int(answer.split()[1]) if answer else 0)


def test_get_request_bodies_are_not_kept_in_memory(proxy):
    small = "/files/1000/small-with-body.tar"
    assert proxy.request(small).status == 200  # cached: the fast path
    before = proxy.rss_peak_kib()
    results: list[int] = []
    threads = [
        threading.Thread(
            target=_send_body,
            args=(
                proxy.port,
                small if i % 2 else f"/files/2000/miss-{i}.tar",
                100_000_000,
                results,
            ),
        )
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(set(results)) in ([200], [200, 413], [413])
    growth_mib = (proxy.rss_peak_kib() - before) / 1024
    assert growth_mib < 64, growth_mib


def test_a_client_that_never_reads_is_cut_off_after_idle_timeout(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], idle_timeout=2)
    paths = {
        "hit": f"/files/{64 * MIB}/never-read.tar",
        "miss": f"/files/{64 * MIB}/never-read-miss.tar",
    }
    assert len(proxy.request(paths["hit"]).body) == 64 * MIB
    sockets = []
    for path in paths.values():
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sockets.append(sock)
    try:
        for result, path in paths.items():
            line = re.compile(rf'"GET {re.escape(path)}" 200 \d+ {result}')
            assert wait_until(lambda line=line: line.search(proxy.log()), timeout=20)
        fds = lambda: len(os.listdir(f"/proc/{proxy.process.pid}/fd"))  # noqa: E731
        assert wait_until(lambda: fds() < 40, timeout=10), fds()
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("size", [20_000, 8 * MIB])
def test_a_stale_if_range_gets_the_whole_file_on_a_hit(proxy, size):
    path = f"/files/{size}/if-range-{size}.tar"
    assert proxy.request(path).status == 200
    hit = proxy.request(path)
    fresh = {"Range": "bytes=10-19", "If-Range": hit.headers["Etag"]}
    assert proxy.request(path, headers=fresh).status == 206
    for stale in ('"0-0"', "Thu, 01 Jan 1998 00:00:00 GMT"):
        response = proxy.request(
            path, headers={"Range": "bytes=10-19", "If-Range": stale}
        )
        assert response.status == 200, stale
        assert response.body == content(f"if-range-{size}.tar", size)


def test_a_stale_if_range_gets_the_whole_file_on_a_miss(origin, make_proxy):
    origin.rate = 2_000_000
    proxy = make_proxy([origin.source("slow")])
    path = "/files/1000000/if-range-miss.tar"
    stale = {"Range": "bytes=100-", "If-Range": "Thu, 01 Jan 1998 00:00:00 GMT"}
    response = proxy.request(path, headers=stale)
    assert response.status == 200
    assert response.body == content("if-range-miss.tar", 1000000)
    fresh = {"Range": "bytes=100-199", "If-Range": LAST_MODIFIED}
    assert proxy.request(path, headers=fresh).status == 206


def test_an_http10_client_sees_a_broken_download_as_an_error(origin, make_proxy):
    proxy = make_proxy([origin.source("chunkcut")])
    path = "/files/3000000/cut-for-http10.tar"
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--http1.0",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            proxy.url + path,
        ],
        capture_output=True,
    )
    assert done.returncode != 0, "a plain close would look like the end of the file"
    assert not proxy.cached(path).exists()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                assert time.monotonic() - started < 30


def test_a_slow_client_that_keeps_reading_is_not_cut_off(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], idle_timeout=1)
    size = MIB + MIB // 4  # the first send is a whole 1 MiB read
    path = f"/files/{size}/slow-but-steady.tar"
    for _round in ("miss", "hit"):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(32 * 1024):
                data += chunk
                time.sleep(0.05)  # about 640 KB/s: each send takes over 1 s
        assert data.endswith(content("slow-but-steady.tar", size)), _round
