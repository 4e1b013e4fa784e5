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


# The repositories feature: dnf's baseurl points at the prefix of a
# repository of kind "rpm", whose repodata/repomd.xml is volatile
# (revalidated after fresh_for) and whose other files are immutable.

PREFIX = "/fedora"
REPOMD = f"{PREFIX}/repodata/repomd.xml"
#: repomd.xml's fresh_for, in seconds: long, so no real delay makes it
#: stale; tests move the proxy's clock past it.
FRESH_FOR = 600


def fedora(mirror: StaticOrigin) -> dict:
    """The repository: /fedora/X is origin/X."""
    return {
        "name": "fedora",
        "prefix": f"{PREFIX}/",
        "kind": "rpm",
        "sources": [mirror.url],
        "fresh_for": f"{FRESH_FOR}s",
    }


def access_results(proxy: Proxy, path: str) -> list[str]:
    """The X-Package-Cache word of each access line for a GET of ``path``."""
    results = []
    for line in proxy.log().splitlines():
        if "pkgcache.access:" in line and f'"GET {path}"' in line:
            # ... "GET PATH" STATUS BYTES RESULT [unclean] TIME
            results.append(line.split(f'"GET {path}"', 1)[1].split()[2])
    return results


def repodata(repo: RpmRepo) -> set[str]:
    """The digest-named repodata files (all but repomd.xml)."""
    return {
        path.name
        for path in (repo.root / "repodata").iterdir()
        if path.name != "repomd.xml"
    }


def test_dnf_sees_a_republished_repository_after_fresh_for(make_proxy, tmp_path: Path):
    repo = RpmRepo(tmp_path / "repo", tmp_path / "work")
    old = repo.add_package("hello", "1.0")
    repo.publish()
    mirror = StaticOrigin(repo.root).start()
    try:
        proxy = make_proxy([], repository=[fedora(mirror)])
        url = proxy.url + PREFIX + "/"

        a = DnfClient(tmp_path / "a", url)
        a.makecache()
        assert a.download("hello").read_bytes() == old.read_bytes()
        assert mirror.count("/repodata/repomd.xml") == 1
        old_repomd = repo.repomd.read_bytes()
        old_files = repodata(repo)

        new = repo.add_package("hello", "1.1")
        repo.publish()
        assert repo.repomd.read_bytes() != old_repomd
        new_files = repodata(repo) - old_files
        assert new_files, "createrepo_c wrote no new repodata file"

        proxy.advance(FRESH_FOR + 1)
        b = DnfClient(tmp_path / "b", url)
        b.makecache()
        downloaded = b.download("hello")
        assert downloaded.name == new.name == "hello-1.1-1.noarch.rpm"
        assert downloaded.read_bytes() == new.read_bytes()

        results = access_results(proxy, REPOMD)
        assert results == ["miss", "refreshed"], proxy.log()
        assert mirror.count("/repodata/repomd.xml") == 2
        assert proxy.cached(REPOMD).read_bytes() == repo.repomd.read_bytes()
        # The new repodata files B needed are new names: plain misses.
        asked = [
            name
            for name in new_files
            if access_results(proxy, f"{PREFIX}/repodata/{name}")
        ]
        assert asked, proxy.log()
        for name in asked:
            assert access_results(proxy, f"{PREFIX}/repodata/{name}") == ["miss"]
        assert access_results(proxy, f"{PREFIX}/{new.name}") == ["miss"]
        assert proxy.cached(f"{PREFIX}/{new.name}").read_bytes() == new.read_bytes()
        stops_idle(proxy)
    finally:
        mirror.stop()


def test_dnf_works_from_stale_copies_when_the_origin_stops(
    repo: RpmRepo, mirror: StaticOrigin, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[fedora(mirror)])
    url = proxy.url + PREFIX + "/"
    rpm = repo.path("hello")

    a = DnfClient(tmp_path / "a", url)
    a.makecache()
    assert a.download("hello").read_bytes() == rpm.read_bytes()
    mirror.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mirror.port), timeout=2).close()
    proxy.advance(FRESH_FOR + 1)

    b = DnfClient(tmp_path / "b", url)
    b.makecache()
    assert b.download("hello").read_bytes() == rpm.read_bytes()
    assert access_results(proxy, REPOMD) == ["miss", "stale"], proxy.log()
    assert access_results(proxy, f"{PREFIX}/{rpm.name}") == ["miss", "hit"]
    assert mirror.count("/repodata/repomd.xml") == 1
    stops_idle(proxy)
