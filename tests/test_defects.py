"""Defects seen through a real proxy: a small file changed in place while
it is served."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Proxy
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
