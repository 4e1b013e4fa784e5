"""Several caches: a cluster behind real HAProxy, a chain, forwarded clients."""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_until
from tests.origin import content

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="needs haproxy (Debian package haproxy)"
)

SIZE = 50_000
NAMES = [f"pkg-{i:02d}.tar.xz" for i in range(30)]


def haproxy_config(port: int, nodes: list[int]) -> str:
    """contrib/haproxy/package-cache.cfg with test addresses and fast checks."""
    text = (ROOT / "contrib/haproxy/package-cache.cfg").read_text()
    text = text.replace("    log /dev/log daemon\n", "")
    text = text.replace("bind :4000", f"bind 127.0.0.1:{port}")
    text = text.replace("inter 2s fall 2 rise 2", "inter 300ms fall 1 rise 1")
    servers = "".join(
        f"    server node{i} 127.0.0.1:{node} check\n" for i, node in enumerate(nodes)
    )
    head, _, _ = text.partition("    server node1")
    return head + servers


@pytest.fixture
def cluster(origin, make_proxy, tmp_path: Path) -> Iterator[tuple]:
    nodes = []
    for i in range(3):
        node_dir = tmp_path / f"node{i}"
        node_dir.mkdir()
        from tests.conftest import Proxy

        node = Proxy(
            node_dir, [origin.source("ok")], trusted_proxies=["127.0.0.1/32"]
        ).start()
        nodes.append(node)
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, [node.port for node in nodes]))
    haproxy = subprocess.Popen(
        [HAPROXY, "-f", str(config), "-db"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert wait_until(lambda: _get(port, "/.pkgcache/health")[0] == 200, timeout=15)
    yield port, nodes
    haproxy.terminate()
    haproxy.wait(10)
    for node in nodes:
        node.stop()


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""


def fetch_all(port: int, paths: list[str], clients: int = 4) -> list[tuple]:
    results: list[tuple] = []
    lock = threading.Lock()

    def worker(share: list[str]) -> None:
        for path in share:
            status, body = _get(port, path)
            with lock:
                results.append((path, status, body))

    threads = [
        threading.Thread(target=worker, args=(paths[i::clients],))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def holder(nodes, name: str) -> list[int]:
    return [
        i
        for i, node in enumerate(nodes)
        if node.cached(f"/files/{SIZE}/{name}").exists()
    ]


@needs_haproxy
def test_cluster_fetches_each_file_once_and_survives_a_node(cluster, origin):
    port, nodes = cluster
    paths = [f"/files/{SIZE}/{name}" for name in NAMES]
    results = fetch_all(port, paths + paths + [p + "?q=1" for p in paths])
    assert len(results) == 90
    for path, status, body in results:
        assert status == 200, path
        assert body == content(path.split("?")[0].rsplit("/", 1)[1], SIZE)
    for name in NAMES:
        assert origin.count("ok", SIZE, name) == 1, name
        assert len(holder(nodes, name)) == 1, name
    placement = {name: holder(nodes, name)[0] for name in NAMES}
    assert len(set(placement.values())) > 1, "files should spread over nodes"

    victim = max(set(placement.values()), key=list(placement.values()).count)
    nodes[victim].process.send_signal(signal.SIGKILL)
    nodes[victim].process.wait(10)
    results = fetch_all(port, paths)
    for path, status, body in results:
        assert status == 200, path
        assert body == content(path.rsplit("/", 1)[1], SIZE)
    for name, node in placement.items():
        expected = 2 if node == victim else 1
        assert origin.count("ok", SIZE, name) == expected, name


@needs_haproxy
def test_nodes_see_the_real_client_through_haproxy(cluster):
    port, nodes = cluster
    _get(port, f"/files/{SIZE}/seen.tar")
    # A node writes its access line just after its answer.
    assert wait_until(
        lambda: '127.0.0.1 "GET /files/' in "".join(node.log() for node in nodes)
    )


def test_a_chain_of_two_caches_streams_end_to_end(origin, make_proxy, tmp_path):
    origin.rate = 1_000_000
    top = make_proxy([origin.source("slow")])
    from tests.conftest import Proxy

    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    edge = Proxy(edge_dir, [top.url]).start()
    try:
        path = "/files/3000000/chained.tar.gz"
        response = edge.open(path)
        assert response.status == 200
        assert response.headers["Content-Length"] == "3000000"
        first = response.read(100000)
        # First bytes at the edge while the top is still downloading.
        assert not top.cached(path).exists()
        rest = response.read()
        assert first + rest == content("chained.tar.gz", 3000000)
        assert wait_until(lambda: edge.cached(path).exists())
        assert top.cached(path).read_bytes() == edge.cached(path).read_bytes()
        assert (
            response.headers["Last-Modified"]
            == top.request(path).headers["Last-Modified"]
        )
        assert origin.count("slow", 3000000, "chained.tar.gz") == 1
    finally:
        edge.stop()


def test_forwarded_for_is_believed_only_from_trusted_proxies(origin, make_proxy):
    proxy = make_proxy(
        [origin.source("ok")], allow=["10.0.0.0/8"], trusted_proxies=["127.0.0.1/32"]
    )

    def status(source: str, forwarded: str | None) -> int:
        conn = http.client.HTTPConnection(
            "127.0.0.1", proxy.port, timeout=10, source_address=(source, 0)
        )
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        conn.request("GET", "/files/10/fwd.tar", headers=headers)
        code = conn.getresponse().status
        conn.close()
        return code

    assert status("127.0.0.1", "10.1.2.3") == 200
    assert wait_until(lambda: '10.1.2.3 "GET /files/10/fwd.tar" 200' in proxy.log())
    assert status("127.0.0.1", "192.168.1.1") == 403
    assert status("127.0.0.1", "192.168.1.1, 10.1.2.3") == 200
    assert status("127.0.0.2", "10.1.2.3") == 403
    assert status("127.0.0.1", None) == 403
