"""Misses, hits, HEAD, Range, 304, methods and request forms."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.conftest import wait_until
from tests.origin import LAST_MODIFIED, LAST_MODIFIED_EPOCH, content


@pytest.mark.smoke
def test_miss_then_hit_fetches_once_and_serves_identical_bytes(proxy, origin):
    path = "/files/50000/foo-1.0.tar.gz"
    first = proxy.request(path)
    second = proxy.request(path)
    expected = content("foo-1.0.tar.gz", 50000)
    assert first.status == second.status == 200
    assert first.body == second.body == expected
    assert first.headers["X-Package-Cache"] == "miss"
    assert second.headers["X-Package-Cache"] == "hit"
    assert origin.count("ok", 50000, "foo-1.0.tar.gz") == 1
    assert proxy.cached(path).read_bytes() == expected


def test_headers_on_miss_and_hit_agree(proxy):
    path = "/files/3000/bar-2.tar.gz"
    miss = proxy.request(path)
    hit = proxy.request(path)
    for response in (miss, hit):
        assert response.headers["Content-Length"] == "3000"
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Last-Modified"] == LAST_MODIFIED
    assert miss.headers["Etag"] == hit.headers["Etag"]
    assert os.stat(proxy.cached(path)).st_mtime == LAST_MODIFIED_EPOCH


def test_hit_records_access_time(proxy):
    path = "/files/100/atime.tar"
    proxy.request(path)
    old = time.time() - 7200
    os.utime(proxy.cached(path), (old, LAST_MODIFIED_EPOCH))
    proxy.request(path)
    result = os.stat(proxy.cached(path))
    assert result.st_atime > time.time() - 60
    assert result.st_mtime == LAST_MODIFIED_EPOCH


def test_head_of_a_hit_and_a_miss_has_headers_and_no_body(proxy, origin):
    path = "/files/4096/head.tar.xz"
    miss = proxy.request(path, method="HEAD")
    assert miss.status == 200 and miss.body == b""
    assert miss.headers["Content-Length"] == "4096"
    assert not proxy.cached(path).exists()
    assert ("GET", "/ok" + path) not in origin.log
    proxy.request(path)
    hit = proxy.request(path, method="HEAD")
    assert hit.status == 200 and hit.body == b""
    assert hit.headers["Content-Length"] == "4096"
    assert proxy.request("/files/1/nothere", method="HEAD").status == 200
    assert proxy.request("/files/1/.x", method="HEAD").status == 404


def test_range_on_a_hit(proxy):
    path = "/files/10000/range.tar"
    body = proxy.request(path).body
    part = proxy.request(path, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.body == body[100:200]
    assert part.headers["Content-Range"] == "bytes 100-199/10000"
    suffix = proxy.request(path, headers={"Range": "bytes=-10"})
    assert suffix.status == 206 and suffix.body == body[-10:]
    beyond = proxy.request(path, headers={"Range": "bytes=20000-"})
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == "bytes */10000"


def test_conditional_requests_get_304(proxy):
    path = "/files/777/cond.tar"
    etag = proxy.request(path).headers["Etag"]
    assert proxy.request(path, headers={"If-None-Match": etag}).status == 304
    assert proxy.request(path, headers={"If-None-Match": '"other"'}).status == 200
    since = proxy.request(path, headers={"If-Modified-Since": LAST_MODIFIED})
    assert since.status == 304 and since.body == b""


def test_other_methods_get_405(proxy):
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        assert proxy.request("/files/10/m.tar", method=method).status == 405
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"CONNECT mirror.example:443 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 405")


def test_query_string_and_host_are_ignored(proxy, origin):
    path = "/files/500/query.tar"
    first = proxy.request(path + "?mirror=1", headers={"Host": "a.example"})
    second = proxy.request(path + "?other=2", headers={"Host": "b.example"})
    assert first.body == second.body == content("query.tar", 500)
    assert second.headers["X-Package-Cache"] == "hit"
    assert origin.log == [("GET", "/ok" + path)]


def test_absolute_form_request_is_served_by_path_alone(proxy, origin):
    path = "/files/600/absolute.tar"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            f"GET http://never-contacted.invalid{path} HTTP/1.1\r\n"
            "Host: never-contacted.invalid\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == content("absolute.tar", 600)
    assert origin.log == [("GET", "/ok" + path)]


@pytest.mark.parametrize("mode", ["chunked", "crumbs"])
def test_chunked_upstream_is_cached_when_it_ends_cleanly(origin, make_proxy, mode):
    """``crumbs`` sends 64-byte HTTP chunks, which libcurl hands over one by
    one: a batch then holds more pieces than one writev or sendmsg takes
    (IOV_MAX, 1024)."""
    proxy = make_proxy([origin.source(mode)])
    path = f"/files/400000/{mode}.tar"
    response = proxy.request(path)
    assert response.status == 200
    assert response.body == content(f"{mode}.tar", 400000)
    assert proxy.cached(path).read_bytes() == response.body


def test_left_over_partials_are_removed_at_start_up(origin, make_proxy, tmp_path):
    partial = tmp_path / "cache" / ".partial"
    partial.mkdir(parents=True)
    (partial / "dl-crashed").write_bytes(b"half a file")
    make_proxy([origin.source("ok")])
    assert not (partial / "dl-crashed").exists()


def test_access_and_fetch_lines_are_logged(proxy):
    proxy.request("/files/10/logged.tar")
    proxy.request("/files/10/logged.tar")
    # tornado writes a handler's access line just after its answer.
    assert wait_until(lambda: '"GET /files/10/logged.tar" 200 10 miss' in proxy.log())
    log = proxy.log()
    assert '"GET /files/10/logged.tar" 200 10 hit' in log
    assert "fetch GET /files/10/logged.tar from http://127.0.0.1" in log


def test_small_hits_from_memory_follow_a_replaced_file(proxy):
    path = "/files/2000/small-replaced.tar"
    proxy.request(path)
    assert proxy.request(path).body == content("small-replaced.tar", 2000)
    replacement = proxy.cache / "replacement"
    replacement.write_bytes(b"n" * 2000)
    os.replace(replacement, proxy.cached(path))
    assert proxy.request(path).body == b"n" * 2000
    assert proxy.request(path, headers={"Range": "bytes=0-1"}).body == b"nn"


def test_small_hits_look_the_same_on_the_fast_and_the_general_path(proxy):
    """A plain GET of a small file skips tornado's handler (smallhits.py);
    a conditional GET that does not match goes the general way. A client
    must not be able to tell them apart."""
    path = "/files/5000/same-headers.tar.xz"
    proxy.request(path)
    fast = proxy.request(path)
    general = proxy.request(path, headers={"If-None-Match": '"something-else"'})
    assert fast.status == general.status == 200
    assert fast.body == general.body == content("same-headers.tar.xz", 5000)

    def comparable(response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k != "Date"}

    assert comparable(fast) == comparable(general)
    assert fast.headers["X-Package-Cache"] == "hit"
    assert fast.headers["Server"].startswith("package-cache/")
    for other in ("/files/1/.hidden", "/.pkgcache/health"):
        assert proxy.request(other).headers["Server"] == fast.headers["Server"]
    assert "Date" in fast.headers
    line = '"GET /files/5000/same-headers.tar.xz" 200 5000 hit'
    assert wait_until(lambda: proxy.log().count(line) == 2)


def test_small_hits_pipelined_with_a_request_body_stay_in_step(proxy):
    """A GET may carry a body: the small-hit path must read it and answer
    each pipelined request in turn on one connection."""
    path = "/files/700/pipelined.tar"
    proxy.request(path)
    expected = content("pipelined.tar", 700)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        stream = sock.makefile("rb")
        for _ in range(2):
            status = stream.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length == 700
            assert stream.read(length) == expected


def test_big_hits_whole_ranged_and_abandoned(proxy):
    """Big hits go through sendfile: whole, a range, and a client that leaves."""
    size = 24 * 1024 * 1024
    path = f"/files/{size}/big-hit.tar"
    expected = content("big-hit.tar", size)
    assert proxy.request(path).body == expected
    whole = proxy.request(path)
    assert whole.headers["X-Package-Cache"] == "hit"
    assert whole.body == expected
    part = proxy.request(path, headers={"Range": "bytes=1000-5000999"})
    assert part.status == 206 and part.body == expected[1000:5001000]
    for _ in range(3):
        response = proxy.open(path)
        response.read(100000)
        response.close()
    assert proxy.request(path).body == expected
