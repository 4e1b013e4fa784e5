"""Defects seen through a real proxy: a small file changed in place while
it is served, a follower that leaves while the download pauses, free-space
eviction that scans the cache when there is room."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Proxy, wait_until
from tests.origin import content
from tests.rawserver import RawServer

INDEX = "/debian/dists/stable/InRelease"
FIRST = b"version 1\n" * 10


@pytest.fixture
def pausing_mirror() -> Iterator[tuple[RawServer, threading.Event]]:
    """Answers the first request with ``FIRST``; later requests (the
    revalidations) get no answer until the test ends. The event is set
    once a later request arrived."""
    asked = threading.Event()
    release = threading.Event()

    def respond(conn: socket.socket, _head: bytes, index: int) -> None:
        if index == 0:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                b"Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                b"Connection: close\r\n\r\n%s" % (len(FIRST), FIRST)
            )
            return
        asked.set()
        release.wait(30)

    server = RawServer(respond).start()
    yield server, asked
    release.set()
    server.stop()


def _stop_promptly(proxy: Proxy) -> float:
    """SIGTERM the proxy; how long it took to exit."""
    began = time.monotonic()
    assert proxy.stop() == 0
    return time.monotonic() - began


@pytest.mark.parametrize(
    "new", [b"version 2, longer\n" * 10, b"v2\n" * 10], ids=["longer", "shorter"]
)
def test_a_small_file_changed_in_place_is_never_sent_with_its_old_length(
    make_proxy, pausing_mirror, new
):
    mirror, asked = pausing_mirror
    repository = {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [mirror.url],
        "fresh_for": "1s",
    }
    proxy = make_proxy([], repository=[repository], stall_timeout=1)
    assert proxy.request(INDEX).body == FIRST
    # A new process: the copy is on disk, its bytes not in memory yet.
    proxy.stop()
    proxy.start()
    cached = proxy.cached(INDEX)
    inode = cached.stat().st_ino
    proxy.advance(5)
    answers: list[http.client.HTTPResponse | BaseException] = []
    bodies: list[bytes] = []

    def get() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
        try:
            conn.request("GET", INDEX)
            response = conn.getresponse()
            bodies.append(response.read())
            answers.append(response)
        except (OSError, http.client.HTTPException) as error:
            answers.append(error)
        finally:
            conn.close()

    client = threading.Thread(target=get)
    client.start()
    # The proxy looked the copy up and asks the mirror, which stays
    # silent: the copy changes in place before the stale copy is served.
    assert asked.wait(10)
    with open(cached, "r+b") as changed:
        changed.write(new)
        changed.truncate()
    assert cached.stat().st_ino == inode
    client.join(20)
    assert len(answers) == 1
    response = answers[0]
    assert isinstance(response, http.client.HTTPResponse), response
    assert response.status in (200, 503)
    if response.status == 200:
        assert bodies[0] in (FIRST, new)
        assert int(response.headers["Content-Length"]) == len(bodies[0])
    assert _stop_promptly(proxy) < 5
    assert "grace period over" not in proxy.log()


def _partial_descriptors(proxy: Proxy) -> int:
    """The proxy's descriptors open on files in the cache's partial folder."""
    assert proxy.process is not None
    folder = str(proxy.cache / ".partial") + os.sep
    count = 0
    fds = f"/proc/{proxy.process.pid}/fd"
    for fd in os.listdir(fds):
        try:
            if os.readlink(f"{fds}/{fd}").startswith(folder):
                count += 1
        except OSError:
            continue
    return count


def test_a_follower_that_leaves_a_paused_download_lets_its_file_go(origin, make_proxy):
    proxy = make_proxy([origin.source("stall")], stall_timeout=60)
    size = 400_000
    path = f"/files/{size}/paused.tar"
    first = proxy.open(path)
    assert first.status == 200
    assert first.read(100_000) == content("paused.tar", size)[:100_000]
    # The download's own descriptor and the first client's.
    assert wait_until(lambda: _partial_descriptors(proxy) == 2)
    # Past what the origin sent before it paused: this follower waits for
    # bytes that do not come.
    joiner = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    joiner.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=300000-\r\n\r\n".encode()
    )
    assert joiner.recv(65536).startswith(b"HTTP/1.1 206")
    assert _partial_descriptors(proxy) == 3
    joiner.close()
    assert wait_until(lambda: _partial_descriptors(proxy) == 2, timeout=5)
    first.close()


def _scans(proxy: Proxy) -> int:
    return proxy.log().count("scanning the cache")


@pytest.mark.parametrize("room", ["plenty", "short"])
def test_free_space_is_checked_before_the_cache_is_scanned(
    origin, make_proxy, tmp_path: Path, room
):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    # "short": more free space wanted than the disk has, so every
    # download must make room (and finds nothing it may remove but the
    # files of this test).
    min_free = 1024 * 1024 if room == "plenty" else free + (1 << 40)
    proxy = make_proxy([origin.source("ok")], min_free=min_free)
    assert wait_until(lambda: _scans(proxy) == 1)  # the count at start-up
    for name in ("one.tar", "two.tar", "three.tar"):
        response = proxy.request(f"/files/5000/{name}")
        assert response.body == content(name, 5000)
    if room == "plenty":
        assert _scans(proxy) == 1
    else:
        assert wait_until(lambda: _scans(proxy) >= 2)
