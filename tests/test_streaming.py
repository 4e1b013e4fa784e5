"""One download shared by many clients; failures, slow and vanishing clients."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkgcache.batches import without_first
from tests.conftest import wait_until
from tests.origin import content

MIB = 1024 * 1024


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(proxy, path: str) -> tuple[int, bytes]:
    response = proxy.open(path)
    return response.status, response.read()


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=8), st.data())
def test_without_first_drops_exactly_the_bytes_already_sent(chunks, data):
    """What a partial writev or sendmsg leaves: the rest of a batch, in
    order, with the untouched chunks passed on as they are (not copied)."""
    whole = b"".join(chunks)
    count = data.draw(st.integers(0, len(whole)))
    rest = without_first(chunks, count)
    assert b"".join(rest) == whole[count:]
    assert all(len(piece) for piece in rest)
    untouched = rest[1:]
    originals = chunks[len(chunks) - len(untouched) :]
    assert all(a is b for a, b in zip(untouched, originals, strict=True))


def test_concurrent_clients_share_one_upstream_download(origin, make_proxy):
    origin.rate = 4 * MIB
    proxy = make_proxy([origin.source("slow")])
    path = "/files/4000000/shared.tar"
    with ThreadPoolExecutor(25) as pool:
        results = list(pool.map(lambda _: read_all(proxy, path), range(25)))
    expected = digest(content("shared.tar", 4000000))
    assert [status for status, _ in results] == [200] * 25
    assert {digest(body) for _, body in results} == {expected}
    assert origin.count("slow", 4000000, "shared.tar") == 1
    assert digest(proxy.cached(path).read_bytes()) == expected


@pytest.mark.smoke
def test_joiner_gets_bytes_before_the_download_ends(origin, make_proxy):
    origin.rate = 1 * MIB
    proxy = make_proxy([origin.source("slow")])
    path = "/files/3000000/joined.tar"
    first = proxy.open(path)
    assert first.status == 200
    first_bytes = first.read(100000)
    joiner = proxy.open(path)
    assert joiner.status == 200
    assert joiner.headers["X-Package-Cache"] == "joined"
    assert joiner.headers["Content-Length"] == "3000000"
    start = joiner.read(65536)
    # The joiner streams while the download is still running: nothing is
    # cached yet and the first client is still mid-file.
    assert not proxy.cached(path).exists()
    expected = content("joined.tar", 3000000)
    assert start == expected[:65536]
    assert first_bytes + first.read() == expected
    assert start + joiner.read() == expected
    assert origin.count("slow", 3000000, "joined.tar") == 1


@pytest.mark.parametrize("mode", ["ok", "flaky"])
def test_a_client_with_every_byte_finds_the_file_cached(origin, make_proxy, mode):
    """The bytes that complete a file go out only after it is published, so
    a client that read the whole body can count on the next request being
    a hit (CI runners fetch, then fan out). ``flaky`` ends each download
    with a resumed transfer, the longest way from last byte to publish."""
    proxy = make_proxy([origin.source(mode)])
    for number in range(15):
        path = f"/files/300000/published-{number}.tar"
        response = proxy.request(path)
        assert response.headers["X-Package-Cache"] == "miss"
        assert len(response.body) == 300000
        assert proxy.cached(path).exists(), f"{path} not published yet"
        assert proxy.request(path).headers["X-Package-Cache"] == "hit"


def test_a_tiny_file_arrives_whole_on_a_miss(proxy):
    response = proxy.request("/files/1024/tiny.tar")
    assert response.status == 200
    assert response.body == content("tiny.tar", 1024)


@pytest.mark.smoke
def test_a_file_over_100_mib_arrives_whole_on_a_miss(proxy):
    size = 110 * MIB
    path = f"/files/{size}/big.tar"
    # Made before the request: on a busy machine, making 110 MiB inside the
    # origin took longer than the proxy's stall_timeout.
    expected = digest(content("big.tar", size))
    status, body = read_all(proxy, path)
    assert status == 200
    assert len(body) == size
    assert digest(body) == expected
    assert proxy.cached(path).stat().st_size == size


def test_slow_reader_does_not_grow_server_memory(proxy):
    size = 200 * MIB
    path = f"/files/{size}/slowreader.tar"
    content("slowreader.tar", size)  # generate before measuring
    baseline = proxy.rss_peak_kib()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = sock.recv(65536)
    # The whole file lands in the cache while this client has read ~nothing.
    assert wait_until(proxy.cached(path).exists, timeout=60)
    growth_mib = (proxy.rss_peak_kib() - baseline) / 1024
    assert growth_mib < 48, f"peak RSS grew by {growth_mib:.0f} MiB"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    hasher = hashlib.sha256(body)
    total = len(body)
    while total < size:
        chunk = sock.recv(4 * MIB)
        assert chunk, "connection closed early"
        hasher.update(chunk)
        total += len(chunk)
    sock.close()
    assert hasher.hexdigest() == digest(content("slowreader.tar", size))


def test_client_leaving_early_still_leaves_the_complete_file(origin, make_proxy):
    origin.rate = 4 * MIB
    proxy = make_proxy([origin.source("slow")])
    path = "/files/2000000/abandoned.tar"
    response = proxy.open(path)
    response.read(1000)
    response.close()
    assert wait_until(proxy.cached(path).exists, timeout=20)
    assert proxy.cached(path).read_bytes() == content("abandoned.tar", 2000000)
    assert proxy.partials() == []


def test_truncated_upstream_is_an_error_and_nothing_is_cached(origin, make_proxy):
    proxy = make_proxy([origin.source("truncate")])
    path = "/files/1000000/truncated.tar"
    for _attempt in range(2):
        response = proxy.open(path)
        # Either the failure came before this client's headers (a clean
        # 502) or after (the body is cut short): never a clean short 200.
        if response.status == 200:
            try:
                body = response.read()
            except http.client.IncompleteRead as error:
                body = error.partial
            else:
                raise AssertionError("a truncated download ended cleanly")
            assert len(body) < 1000000
        else:
            assert response.status == 502
        assert wait_until(lambda: proxy.partials() == [])
        assert not proxy.cached(path).exists()
    # Each request started a fresh download (resume attempts aside).
    assert proxy.log().count("fetch GET /files/1000000/truncated.tar") == 2


def test_stalled_upstream_closes_every_client_uncleanly(origin, make_proxy):
    proxy = make_proxy([origin.source("stall")], stall_timeout=1)
    path = "/files/2000000/stalled.tar"
    first = proxy.open(path)
    first.read(10000)
    joiner = proxy.open(path)
    errors = []

    def drain(response):
        try:
            response.read()
        except http.client.IncompleteRead:
            errors.append(response)

    threads = [threading.Thread(target=drain, args=(r,)) for r in (first, joiner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(errors) == 2
    assert not proxy.cached(path).exists()
    assert proxy.partials() == []


def test_chunked_upstream_failing_is_not_a_clean_end(origin, make_proxy):
    """Without Content-Length the client must still see an error, not EOF."""
    proxy = make_proxy([origin.source("e404"), origin.source("stall")], stall_timeout=1)
    path = "/files/300000/half.tar"
    started = time.monotonic()
    response = proxy.open(path)
    try:
        response.read()
        clean = True
    except http.client.IncompleteRead:
        clean = False
    assert not clean
    assert time.monotonic() - started < 20


def test_headers_arrive_before_the_first_body_byte(origin, make_proxy):
    """A source that sends its head and waits: the client sees the head now."""
    proxy = make_proxy([origin.source("late")])
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    started = time.monotonic()
    conn.request("GET", "/files/5000/late.tar")
    response = conn.getresponse()
    head_time = time.monotonic() - started
    assert response.status == 200
    assert response.read() == content("late.tar", 5000)
    body_time = time.monotonic() - started
    assert body_time >= 2
    assert head_time < body_time - 1
    conn.close()
