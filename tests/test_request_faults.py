"""Faults of the request path found by reading the handler, each through
a real proxy process and a real origin: a client that leaves mid-body, a
HEAD of a pass-through, an index naming a volatile file, and an offline
registry asked for a search."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.static_origin import StaticOrigin

INRELEASE = b"Origin: test\nSuite: stable\n" * 40
PACKAGE = b"a package's bytes\n" * 100


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[StaticOrigin]:
    """A Debian archive whose Packages names its own suite's InRelease, with
    a wrong digest, beside a real package with the right one."""
    root = tmp_path / "archive"
    binary = root / "dists/stable/main/binary-amd64"
    binary.mkdir(parents=True)
    (root / "pool").mkdir()
    (root / "dists/stable/InRelease").write_bytes(INRELEASE)
    (root / "pool/hello_1.0_all.deb").write_bytes(PACKAGE)
    (binary / "Packages").write_bytes(
        b"Package: hostile\nFilename: dists/stable/InRelease\nSHA256: "
        + b"0" * 64
        + b"\n\nPackage: hello\nFilename: pool/hello_1.0_all.deb\nSHA256: "
        + hashlib.sha256(PACKAGE).hexdigest().encode()
        + b"\n"
    )
    (root / "-/v1").mkdir(parents=True)
    (root / "-/v1/search").write_bytes(b'{"objects": []}')
    (root / "-/ping").write_bytes(b"{}")
    server = StaticOrigin(root).start()
    yield server
    server.stop()


def debian(archive: StaticOrigin, **settings: Any) -> dict[str, Any]:
    return {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [archive.url],
        **settings,
    }


def npm(archive: StaticOrigin, **settings: Any) -> dict[str, Any]:
    return {
        "name": "npm",
        "prefix": "/npm/",
        "kind": "npm",
        "sources": [archive.url],
        **settings,
    }


def requests_in_flight(proxy: Any) -> float:
    """The daemon's count of requests being answered (its own pages are
    not counted)."""
    text = proxy.request("/.pkgcache/metrics").body.decode()
    found = re.search(r"^pkgcache_requests_in_flight (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


def test_an_index_naming_a_volatile_file_cannot_pin_it(make_proxy, archive):
    proxy = make_proxy([], repository=[debian(archive)])
    packages = "/debian/dists/stable/main/binary-amd64/Packages"
    assert proxy.request(packages).status == 200
    assert wait_until(lambda: "names the digests of 2 files" in proxy.log())
    # The package it names is still checked against it ...
    deb = proxy.request("/debian/pool/hello_1.0_all.deb")
    assert deb.status == 200 and deb.body == PACKAGE
    assert wait_until(lambda: "verified=sha256" in proxy.log())
    # ... but the suite's own index is not held to a digest it names.
    answer = proxy.request("/debian/dists/stable/InRelease")
    assert answer.status == 200
    assert answer.body == INRELEASE
    assert proxy.cached("/debian/dists/stable/InRelease").read_bytes() == INRELEASE
    assert "digest mismatch" not in proxy.log()


def test_head_of_a_pass_through_asks_upstream_with_head_only(make_proxy, archive):
    proxy = make_proxy([], repository=[npm(archive)])
    answer = proxy.request("/npm/-/v1/search?text=x", method="HEAD")
    assert answer.status == 200
    assert answer.headers["X-Package-Cache"] == "pass"
    assert ("HEAD", "/-/v1/search") in archive.log
    assert ("GET", "/-/v1/search") not in archive.log


def test_an_offline_registry_never_asks_upstream_for_a_search_or_a_ping(
    make_proxy, archive
):
    proxy = make_proxy([], repository=[npm(archive, offline=True)])
    for path in ("/npm/-/v1/search?text=x", "/npm/-/ping"):
        for method in ("GET", "HEAD"):
            answer = proxy.request(path, method=method)
            assert answer.status == 504, (method, path, answer.body)
    assert archive.log == []


def test_a_client_that_leaves_mid_request_body_does_not_hold_up_a_stop(
    make_proxy, archive
):
    proxy = make_proxy([], repository=[debian(archive)], shutdown_grace=60)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(
            b"GET /debian/pool/hello_1.0_all.deb HTTP/1.1\r\n"
            b"Host: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000
        )
        # The body is being read when the client goes.
        assert wait_until(lambda: requests_in_flight(proxy) == 1)
    assert wait_until(lambda: requests_in_flight(proxy) == 0)
    started = time.monotonic()
    proxy.send(signal.SIGTERM)
    assert proxy.process is not None
    assert proxy.process.wait(30) == 0
    # Nothing was left in flight: no waiting out the 60 s grace.
    assert time.monotonic() - started < 20, proxy.log()
    assert "grace period over" not in proxy.log()
