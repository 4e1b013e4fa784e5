"""A real dnf (makecache, install --downloadonly) through package-cache, from
a real createrepo_c repository served like a mirror; groundwork for the
repositories feature. Every dnf runs with scratch state (see tests.rpmrepo)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Proxy, wait_until
from tests.rpmrepo import DnfClient, RpmRepo, missing_tools
from tests.static_origin import StaticOrigin

pytestmark = pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"needs dnf, createrepo_c and rpmbuild; missing: {missing_tools()}",
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> RpmRepo:
    """A repository with hello 1.0, built once for the module (read-only)."""
    base = tmp_path_factory.mktemp("rpmrepo")
    repo = RpmRepo(base / "repo", base / "work")
    repo.add_package("hello", "1.0")
    repo.publish()
    return repo


@pytest.fixture
def mirror(repo: RpmRepo) -> Iterator[StaticOrigin]:
    server = StaticOrigin(repo.root).start()
    yield server
    server.stop()


def upstream_fetches(proxy: Proxy) -> list[str]:
    return [line for line in proxy.log().splitlines() if "pkgcache.upstream:" in line]


def served(proxy: Proxy, path: str) -> int:
    """How many client GETs of ``path`` the proxy answered."""
    return sum(
        1
        for line in proxy.log().splitlines()
        if "pkgcache.access:" in line and f'"GET {path}"' in line
    )


def client_a_downloads_hello(
    repo: RpmRepo, mirror: StaticOrigin, proxy: Proxy, folder: Path
) -> Path:
    """Client A: makecache and download through the proxy; checks and returns
    the path of the rpm in the repository."""
    rpm = repo.path("hello")
    client = DnfClient(folder, proxy.url)
    client.makecache()
    assert client.download("hello").read_bytes() == rpm.read_bytes()
    cached = proxy.cached(rpm.name)
    assert wait_until(cached.exists), proxy.log()
    assert cached.read_bytes() == rpm.read_bytes()
    assert mirror.count("/" + rpm.name) == 1
    return rpm


def stops_idle(proxy: Proxy) -> None:
    """Every request finished: SIGTERM ends the proxy at once, not after the
    shutdown grace period (10 s) spent waiting for a request still counted."""
    started = time.monotonic()
    assert proxy.stop() == 0, proxy.log()
    assert time.monotonic() - started < 5, proxy.log()
    assert "stopping: 0 requests in flight" in proxy.log(), proxy.log()


def test_dnf_makecache_and_download_through_the_cache(
    repo: RpmRepo, mirror: StaticOrigin, make_proxy, tmp_path: Path
):
    proxy = make_proxy([mirror.url])
    rpm = client_a_downloads_hello(repo, mirror, proxy, tmp_path / "a")
    # The metadata dnf needed came through the proxy too, and is cached.
    assert mirror.count("/repodata/repomd.xml") == 1
    repomd = (repo.root / "repodata" / "repomd.xml").read_bytes()
    assert proxy.cached("repodata/repomd.xml").read_bytes() == repomd

    client = DnfClient(tmp_path / "b", proxy.url)
    client.makecache()
    assert client.download("hello").read_bytes() == rpm.read_bytes()
    assert mirror.count("/" + rpm.name) == 1
    # Nothing at all was asked of the origin twice...
    assert all(n == 1 for n in mirror.requests.values()), mirror.requests
    # ...and each client got what it asked for at the first try.
    assert served(proxy, "/repodata/repomd.xml") == 2, proxy.log()
    assert served(proxy, "/" + rpm.name) == 2, proxy.log()
    stops_idle(proxy)


def test_dnf_works_when_the_origin_is_gone_after_the_first_client(
    repo: RpmRepo, mirror: StaticOrigin, make_proxy, tmp_path: Path
):
    proxy = make_proxy([mirror.url])
    rpm = client_a_downloads_hello(repo, mirror, proxy, tmp_path / "a")
    mirror.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mirror.port), timeout=2).close()
    fetched = upstream_fetches(proxy)

    client = DnfClient(tmp_path / "b", proxy.url)
    client.makecache()
    assert client.download("hello").read_bytes() == rpm.read_bytes()
    # Client B was served from the cache alone: no upstream fetch at all.
    assert upstream_fetches(proxy) == fetched, proxy.log()
    assert served(proxy, "/repodata/repomd.xml") == 2, proxy.log()
    assert served(proxy, "/" + rpm.name) == 2, proxy.log()
    stops_idle(proxy)
