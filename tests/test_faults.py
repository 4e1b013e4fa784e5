"""Faults of real mirrors and real clients: each test names its fault."""

from __future__ import annotations

import http.client
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.origin import content


def test_range_on_a_miss_is_206_and_the_whole_file_is_cached(origin, make_proxy):
    """Fault: a client resuming (wget -c) asks a Range of an uncached file."""
    origin.rate = 2_000_000
    proxy = make_proxy([origin.source("slow")])
    path = "/files/3000000/resumed-by-client.tar"
    expected = content("resumed-by-client.tar", 3000000)
    part = proxy.request(path, headers={"Range": "bytes=1000000-"})
    assert part.status == 206
    assert part.headers["Content-Range"] == "bytes 1000000-2999999/3000000"
    assert part.body == expected[1000000:]
    joined = proxy.request(path, headers={"Range": "bytes=10-19"})
    assert joined.status == 206 and joined.body == expected[10:20]
    assert wait_until(proxy.cached(path).exists)
    assert proxy.cached(path).read_bytes() == expected


def test_range_joining_a_download_streams_the_requested_bytes(origin, make_proxy):
    """Fault: curl -C - joins a file that is downloading for someone else."""
    origin.rate = 1_000_000
    proxy = make_proxy([origin.source("slow")])
    path = "/files/2000000/joined-range.tar"
    first = proxy.open(path)
    first.read(1000)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.request("GET", path, headers={"Range": "bytes=500000-599999"})
    response = conn.getresponse()
    assert response.status == 206
    assert response.headers["X-Package-Cache"] == "joined"
    assert response.read() == content("joined-range.tar", 2000000)[500000:600000]
    assert not proxy.cached(path).exists(), "served while still downloading"
    first.read()


def test_unsatisfiable_range_on_a_miss_is_416(proxy):
    """Fault: a client's partial file is already longer than the file."""
    response = proxy.request("/files/1000/short.tar", headers={"Range": "bytes=5000-"})
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */1000"


def test_kill_9_mid_download_leaves_nothing_and_restart_downloads_again(
    origin, make_proxy
):
    """Fault: the daemon is killed (-9) in the middle of downloads."""
    origin.rate = 500_000
    proxy = make_proxy([origin.source("slow")])
    paths = [f"/files/3000000/killed-{i}.tar" for i in range(3)]
    responses = [proxy.open(path) for path in paths]
    for response in responses:
        response.read(1000)
    assert len(proxy.partials()) == 3
    proxy.process.send_signal(signal.SIGKILL)
    proxy.process.wait(10)
    for path in paths:
        assert not proxy.cached(path).exists()
    origin.rate = 50_000_000
    proxy.start()
    assert proxy.partials() == []
    for path in paths:
        response = proxy.request(path)
        assert response.headers["X-Package-Cache"] == "miss"
        assert response.body == content(path.rsplit("/", 1)[1], 3000000)


def test_upstream_headers_that_do_not_belong_to_a_file_are_dropped(origin, make_proxy):
    """Fault: a mirror sends cookies and hop-by-hop headers."""
    proxy = make_proxy([origin.source("cookie")])
    response = proxy.request("/files/100/cookie.tar")
    assert response.status == 200
    for header in ("Set-Cookie", "X-Origin-Secret", "Keep-Alive", "Upgrade"):
        assert header not in response.headers
    assert response.headers["Content-Length"] == "100"


def test_upstream_downloads_over_the_cap_queue_instead_of_failing(origin, make_proxy):
    """Fault: more cold files at once than upstream_connections allows."""
    origin.rate = 2_000_000
    proxy = make_proxy([origin.source("slow")], upstream_connections=2)
    paths = [f"/files/400000/queued-{i}.tar" for i in range(5)]
    responses = [proxy.open(path, timeout=60) for path in paths]
    for path, response in zip(paths, responses, strict=True):
        assert response.status == 200
        assert response.read() == content(path.rsplit("/", 1)[1], 400000)
    assert origin.max_active <= 2


def test_idle_and_slowloris_connections_are_closed(origin, make_proxy):
    """Fault: clients that open connections and send nothing, or crawl."""
    import socket

    proxy = make_proxy([origin.source("ok")], idle_timeout=1)
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    crawler = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    started = time.monotonic()
    closed_at = None
    for byte in b"GET /files/10/slow.tar HTTP/1.1\r\nHost: x\r\n":
        try:
            crawler.send(bytes([byte]))
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.2)
        if time.monotonic() - started > 8:
            break
    assert closed_at is not None and closed_at - started < 6
    assert idle.recv(100) == b""
    assert proxy.request("/files/10/still-serving.tar").status == 200


def test_disk_write_error_mid_download(origin, make_proxy, tmp_path: Path):
    """Fault: the cache's file system refuses writes (EFBIG via RLIMIT_FSIZE)."""
    origin.rate = 4_000_000
    proxy = make_proxy([origin.source("slow")], fsize_limit=3_000_000)
    path = "/files/8000000/too-big-for-disk.tar"
    expected = content("too-big-for-disk.tar", 8000000)
    first = proxy.open(path)
    start = first.read(3_500_000)  # past the limit: the partial file stopped
    joiner = proxy.open(path)
    assert start + first.read() == expected, "a client fed directly gets it all"
    try:
        joiner.read()
        joiner_clean = True
    except http.client.IncompleteRead:
        joiner_clean = False
    assert not joiner_clean, "a client reading the partial file is cut off"
    assert wait_until(lambda: proxy.partials() == [])
    assert not proxy.cached(path).exists()
    assert proxy.log().count("cannot write /files/8000000/too-big-for-disk.tar") == 1
    assert proxy.request("/files/1000/small-after-full.tar").status == 200


def test_broken_download_resumes_and_clients_see_no_break(origin, make_proxy):
    """Fault: the mirror resets the connection half-way; it honours Range."""
    proxy = make_proxy([origin.source("flaky")])
    path = "/files/2000000/resumed.tar"
    response = proxy.request(path)
    assert response.status == 200
    assert response.body == content("resumed.tar", 2000000)
    assert proxy.cached(path).read_bytes() == response.body
    assert origin.count("flaky", 2000000, "resumed.tar") == 2
    assert ("GET", "/flaky" + path) in origin.log
    assert "resume GET /files/2000000/resumed.tar" in proxy.log()


def test_resume_moves_to_the_next_source(origin, make_proxy):
    """Fault: the first mirror breaks mid-file and again on resume; the
    second has the same file."""
    proxy = make_proxy([origin.source("brittle"), origin.source("ok")])
    path = "/files/1000000/elsewhere.tar"
    response = proxy.request(path)
    assert response.body == content("elsewhere.tar", 1000000)
    assert proxy.cached(path).exists()
    assert origin.count("ok", 1000000, "elsewhere.tar") == 1


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("shifty", id="validator-changes-between-requests"),
        pytest.param("liar", id="206-claims-another-total-length"),
    ],
)
def test_a_different_file_is_never_spliced_in(origin, make_proxy, mode):
    """Fault: the bytes a mirror offers to continue with are not the same
    file: the clients get an error, and nothing is cached."""
    proxy = make_proxy([origin.source(mode)])
    path = f"/files/1000000/{mode}.tar"
    response = proxy.open(path)
    if response.status == 200:
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    else:
        assert response.status == 502
    assert wait_until(lambda: proxy.partials() == [])
    assert not proxy.cached(path).exists()
