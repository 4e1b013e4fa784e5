"""Upstream answers that are not the file, through a real proxy: what a
client gets, what stays cached, and which sources are asked."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Proxy
from tests.rawserver import RawServer, header

INDEX = "dists/stable/InRelease"
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"

#: (status, headers, body) of one answer.
Answer = tuple[int, dict[str, str], bytes]


class Scripted:
    """An origin on raw sockets that gives its answers in order, the last
    one again once the others are used up; ``chooser``, when given, picks
    the answer from the request head instead."""

    def __init__(
        self,
        answers: list[Answer],
        chooser: Callable[[bytes], Answer] | None = None,
    ) -> None:
        self.answers = answers
        self.chooser = chooser
        self.server = RawServer(self._respond).start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[bytes]:
        return self.server.requests

    def asked(self, path: str) -> int:
        line = f"GET {path} ".encode()
        return sum(request.startswith(line) for request in self.requests)

    def _respond(self, conn: socket.socket, head: bytes, index: int) -> None:
        if self.chooser is not None:
            status, headers, body = self.chooser(head)
        else:
            status, headers, body = self.answers[min(index, len(self.answers) - 1)]
        lines = [f"HTTP/1.1 {status} X", "Connection: close"]
        if "Transfer-Encoding" in headers:
            pieces = [body[at : at + 8192] for at in range(0, len(body), 8192)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
            body += b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        if head.startswith(b"HEAD "):
            data = data[: data.index(b"\r\n\r\n") + 4]
        conn.sendall(data)


@pytest.fixture
def origins() -> Iterator[list[Scripted]]:
    started: list[Scripted] = []
    yield started
    for origin in started:
        origin.server.stop()


def scripted(origins: list[Scripted], *answers: Answer, **kwargs) -> Scripted:
    origin = Scripted(list(answers), **kwargs)
    origins.append(origin)
    return origin


def debian(url: str, **settings) -> dict:
    return {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [url],
        **settings,
    }


FILE = (200, {"Last-Modified": LAST_MODIFIED, "ETag": '"v1"'}, b"the file\n")


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_upstream_is_503_and_the_file_is_fetched_once_it_recovers(
    make_proxy, origins, status
):
    origin = scripted(origins, (status, {"Retry-After": "5"}, b"slow down"), FILE)
    proxy: Proxy = make_proxy([], repository=[debian(origin.url, negative_for="1h")])
    path = "/debian/pool/a.deb"
    busy = proxy.request(path)
    assert busy.status == 503
    # The client is told why, and when to come back, as the upstream said.
    assert busy.headers["Retry-After"] == "5"
    assert busy.body == f"503 Service Unavailable: upstream: HTTP {status}\n".encode()
    assert not proxy.cached(path).exists()
    again = proxy.request(path)
    assert (again.status, again.body) == (200, b"the file\n")
    assert origin.asked("/pool/a.deb") == 2


@pytest.mark.parametrize("status", [403, 408, 400])
def test_a_refusal_everywhere_is_502_and_not_remembered_as_missing(
    make_proxy, origins, status
):
    first = scripted(origins, (status, {}, b"no"), FILE)
    second = scripted(origins, (status, {}, b"no"), FILE)
    repository = debian(first.url, negative_for="1h")
    repository["sources"].append(second.url)
    proxy: Proxy = make_proxy([], repository=[repository])
    path = "/debian/pool/b.deb"
    assert proxy.request(path).status == 502
    assert second.asked("/pool/b.deb") == 1
    assert proxy.request(path).body == b"the file\n"


def test_a_revalidation_answered_429_serves_and_keeps_the_stale_copy(
    make_proxy, origins
):
    newer = (200, {"Last-Modified": LAST_MODIFIED, "ETag": '"v2"'}, b"version 2\n")
    origin = scripted(
        origins,
        (200, {"Last-Modified": LAST_MODIFIED, "ETag": '"v1"'}, b"version 1\n"),
        (429, {"Retry-After": "60"}, b"slow down"),
        newer,
    )
    repository = debian(origin.url, fresh_for="60s", stale_if_error="1d")
    proxy: Proxy = make_proxy([], repository=[repository])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).body == b"version 1\n"
    proxy.advance(120)
    stale = proxy.request(path)
    assert (stale.status, stale.body) == (200, b"version 1\n")
    assert stale.headers["X-Package-Cache"] == "stale"
    assert proxy.cached(path).read_bytes() == b"version 1\n"
    assert header(origin.requests[1], "If-None-Match") == '"v1"'
    fresh = proxy.request(path)
    assert (fresh.status, fresh.body) == (200, b"version 2\n")


def test_a_304_naming_another_etag_is_no_confirmation_the_file_is_fetched_again(
    make_proxy, origins
):
    """RFC 9111 section 4.3.4: a 304 whose strong ETag is not the one asked
    about does not describe the stored copy."""
    versions = iter([b"version 1\n", b"version 2\n"])

    def answer(head: bytes) -> Answer:
        if header(head, "If-None-Match") is not None:
            return 304, {"ETag": '"v2"'}, b""
        body = next(versions)
        return 200, {"ETag": f'"v{body[8:9].decode()}"'}, body

    origin = scripted(origins, chooser=answer)
    proxy: Proxy = make_proxy([], repository=[debian(origin.url, fresh_for="60s")])
    path = f"/debian/{INDEX}"
    assert proxy.request(path).body == b"version 1\n"
    proxy.advance(120)
    again = proxy.request(path)
    assert (again.status, again.body) == (200, b"version 2\n")
    assert proxy.cached(path).read_bytes() == b"version 2\n"
    assert header(origin.requests[1], "If-None-Match") == '"v1"'
    assert header(origin.requests[2], "If-None-Match") is None


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_file_over_max_file_size_is_refused_without_asking_the_next_source(
    make_proxy, origins, framing
):
    big = bytes(range(256)) * 1024  # 256 KiB
    headers = {"Transfer-Encoding": "chunked"} if framing == "chunked" else {}
    first = scripted(origins, (200, headers, big))
    second = scripted(origins, (200, headers, big))
    proxy: Proxy = make_proxy(
        [first.url, second.url], max_file_size="100KiB", client_buffer="64KiB"
    )
    path = "/pool/big.tar"
    response = proxy.open(path)
    try:
        status, body = response.status, response.read()
    except Exception:  # the head went out before the size was known: cut
        status, body = 200, b""
    if framing == "length":
        assert status == 502
    assert len(body) < len(big)
    assert first.asked(path) == 1
    assert second.asked(path) == 0
    assert not proxy.cached(path).exists()
    assert "larger than max_file_size" in proxy.log()
