"""/.pkgcache/metrics, status and health."""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct

from tests.conftest import wait_until


def metric(proxy, name: str, **labels: str) -> float:
    text = proxy.request("/.pkgcache/metrics").body.decode()
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        "(?m)^" + re.escape(name + (f"{{{label_text}}}" if labels else "")) + r" (\S+)"
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_move_after_a_miss_a_hit_and_a_join(origin, make_proxy):
    origin.rate = 1_000_000
    proxy = make_proxy([origin.source("slow")])
    path = "/files/2000000/metered.tar"
    first = proxy.open(path)
    first.read(1000)
    joiner = proxy.open(path)
    assert joiner.headers["X-Package-Cache"] == "joined"
    assert metric(proxy, "pkgcache_downloads_in_flight") == 1
    assert metric(proxy, "pkgcache_joined_clients") == 1
    first.read()
    joiner.read()
    proxy.request(path)
    assert wait_until(
        lambda: metric(proxy, "pkgcache_requests_total", result="hit") == 1
    )
    assert metric(proxy, "pkgcache_requests_total", result="miss") == 1
    assert metric(proxy, "pkgcache_requests_total", result="joined") == 1
    assert metric(proxy, "pkgcache_served_bytes_total", source="cache") == 2000000
    assert metric(proxy, "pkgcache_served_bytes_total", source="upstream") == 4000000
    assert metric(proxy, "pkgcache_upstream_bytes_total") == 2000000
    source = origin.source("slow")
    assert (
        metric(
            proxy, "pkgcache_upstream_fetches_total", source=source, outcome="complete"
        )
        == 1
    )
    assert metric(proxy, "pkgcache_downloads_in_flight") == 0
    assert metric(proxy, "pkgcache_joined_clients") == 0
    assert metric(proxy, "pkgcache_cache_files") == 1
    assert metric(proxy, "pkgcache_cache_bytes") == 2000000


def test_status_json_and_html(proxy):
    proxy.request("/files/500/s.tar")
    proxy.request("/files/500/s.tar")
    status = json.loads(proxy.request("/.pkgcache/status.json").body)
    assert status["requests"]["hit"] == 1 and status["requests"]["miss"] == 1
    assert status["hit_ratio"] == 0.5
    assert status["bytes_saved"] == 500
    assert status["cache"]["files"] == 1
    page = proxy.request("/.pkgcache/status")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"Hit ratio: 50.0%" in page.body


def test_status_pages_refused_from_other_networks(origin, make_proxy):
    proxy = make_proxy([origin.source("ok")], status_allow=["127.0.0.1/32"])
    assert proxy.request("/.pkgcache/status.json").status == 200
    for page in ("metrics", "status", "status.json"):
        conn = http.client.HTTPConnection(
            "127.0.0.1", proxy.port, timeout=10, source_address=("127.0.0.2", 0)
        )
        conn.request("GET", f"/.pkgcache/{page}")
        assert conn.getresponse().status == 403
        conn.close()
    conn = http.client.HTTPConnection(
        "127.0.0.1", proxy.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    conn.request("GET", "/.pkgcache/health")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"ok\n"


def test_cache_count_at_start_up_includes_existing_files(origin, make_proxy, tmp_path):
    existing = tmp_path / "cache" / "distfiles"
    existing.mkdir(parents=True)
    (existing / "old.tar").write_bytes(b"x" * 1234)
    proxy = make_proxy([origin.source("ok")])
    assert wait_until(lambda: metric(proxy, "pkgcache_cache_bytes") == 1234)
    assert metric(proxy, "pkgcache_cache_files") == 1


def test_pages_and_errors_log_the_bytes_of_their_body(proxy):
    for path in ("/.pkgcache/status.json", "/.pkgcache/metrics", "/.hidden"):
        response = proxy.request(path)
        line = f'"GET {path}" {response.status} {len(response.body)} '
        assert len(response.body) > 0
        assert wait_until(lambda line=line: line in proxy.log()), line


def test_an_abandoned_big_hit_counts_only_the_bytes_that_left(proxy):
    size = 64 * 1024 * 1024
    path = f"/files/{size}/abandoned.tar"
    assert len(proxy.request(path).body) == size
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = 0
        while received < 1024 * 1024:
            received += len(sock.recv(65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pattern = re.compile(rf'"GET {re.escape(path)}" 200 (\d+) hit')
    assert wait_until(lambda: pattern.search(proxy.log()) is not None, timeout=15)
    logged = int(pattern.search(proxy.log()).group(1))
    assert 1024 * 1024 <= logged < size // 2
    served = metric(proxy, "pkgcache_served_bytes_total", source="cache")
    assert served == logged


def test_source_passwords_are_never_shown(origin, make_proxy):
    source = origin.source("ok").replace("http://", "http://mirror:s3cret@")
    proxy = make_proxy([source])
    assert proxy.request("/files/100/secretive.tar").status == 200
    pages = [
        proxy.request(f"/.pkgcache/{page}").body.decode()
        for page in ("metrics", "status", "status.json")
    ]
    for text in [*pages, proxy.log()]:
        assert "s3cret" not in text
    assert all("mirror:***@" in text for text in pages)
    assert "mirror:***@" in proxy.log()
