"""Upstreams that misbehave on purpose: every client gets the whole, right
file or an error, and nothing wrong is ever stored."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.origin import content
from tests.rawserver import RawServer, header


@pytest.fixture
def raw_servers() -> Iterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for server in started:
        server.stop()


def test_a_stall_mid_body_is_seen_within_stall_timeout(origin, make_proxy):
    """The stall check must run even when libcurl has nothing to read; a
    long connect_timeout must not hide it."""
    proxy = make_proxy([origin.source("stall")], stall_timeout=2, connect_timeout=60)
    path = "/files/400000/stalled.tar"
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "--max-time", "30", proxy.url + path],
        capture_output=True,
    )
    elapsed = time.monotonic() - started
    assert done.returncode != 0  # an unclean end, never a clean short file
    assert elapsed < 12, elapsed
    assert "stalled" in proxy.log()
    assert not proxy.cached(path).exists()


def _both_lengths(conn: socket.socket, _head: bytes, _index: int) -> None:
    body = content("framed.tar", 300_000)
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192])
        for i in range(0, len(body), 8192)
    )
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 75000\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )


def test_chunked_body_with_a_content_length_is_refused(origin, make_proxy, raw_servers):
    raw = RawServer(_both_lengths).start()
    raw_servers.append(raw)
    alone = make_proxy([raw.url])
    response = alone.request("/files/300000/framed.tar")
    assert response.status == 502
    assert not alone.cached("/files/300000/framed.tar").exists()
    assert alone.partials() == []
    assert "Transfer-Encoding and Content-Length" in alone.log()


def test_a_refused_framing_fails_over_to_the_next_source(
    origin, make_proxy, raw_servers, tmp_path
):
    raw = RawServer(_both_lengths).start()
    raw_servers.append(raw)
    proxy = make_proxy([raw.url, origin.source("ok")])
    path = "/files/300000/framed.tar"
    response = proxy.request(path)
    assert response.status == 200
    assert response.body == content("framed.tar", 300_000)
    assert proxy.cached(path).read_bytes() == response.body


V1 = b"1" * 200_000
V2 = b"2" * 200_000
OLD_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
NEW_DATE = "Thu, 22 Oct 2015 07:28:00 GMT"


def _changing_file(conn: socket.socket, head: bytes, index: int) -> None:
    """v1 breaks half-way; then the file is v2, and a Range is answered with
    a 206 of v2 whatever If-Range says."""
    range_header = header(head, "Range")
    if range_header is None and index == 0:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nLast-Modified: %s\r\n\r\n"
            % (len(V1), OLD_DATE.encode())
        )
        conn.sendall(V1[: len(V1) // 2])
        conn.shutdown(socket.SHUT_RDWR)
        return
    if range_header is not None:
        start = int(range_header.split("=")[1].split("-")[0])
        conn.sendall(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b"Content-Range: bytes %d-%d/%d\r\nLast-Modified: %s\r\n\r\n"
            % (len(V2) - start, start, len(V2) - 1, len(V2), NEW_DATE.encode())
        )
        conn.sendall(V2[start:])
        return
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nLast-Modified: %s\r\n\r\n"
        % (len(V2), NEW_DATE.encode())
        + V2
    )


def test_a_resume_never_splices_a_changed_file(make_proxy, raw_servers):
    raw = RawServer(_changing_file).start()
    raw_servers.append(raw)
    proxy = make_proxy([raw.url])
    path = "/files/changing.tar"
    first = subprocess.run(
        ["curl", "-sS", "-o", "-", "--max-time", "30", proxy.url + path],
        capture_output=True,
    )
    assert first.returncode != 0  # the resume was refused: an unclean end
    assert not first.stdout.endswith(V2[-1000:])
    assert not proxy.cached(path).exists()
    assert any(header(r, "If-Range") == OLD_DATE for r in raw.requests)
    again = proxy.request(path)
    assert again.status == 200 and again.body == V2
    assert proxy.cached(path).read_bytes() == V2
