"""Real pacman syncs and downloads through package-cache from a static mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pacmanrepo import PacmanClient, PacmanRepo, missing_tools
from tests.static_origin import StaticOrigin

pytestmark = pytest.mark.skipif(
    bool(missing_tools()),
    reason="needs pacman, repo-add and bsdtar (Debian: pacman-package-manager "
    f"and libarchive-tools); missing: {', '.join(missing_tools())}",
)

PACKAGE = "hello-1.0-1-any.pkg.tar.zst"
PACKAGE_PATH = f"/core/os/x86_64/{PACKAGE}"


@pytest.fixture
def repo(tmp_path: Path) -> PacmanRepo:
    repo = PacmanRepo(tmp_path / "mirror")
    repo.add_package("hello", "1.0-1")
    repo.publish()
    return repo


@pytest.fixture
def mirror(repo: PacmanRepo) -> Iterator[StaticOrigin]:
    origin = StaticOrigin(repo.root).start()
    yield origin
    origin.stop()


def upstream_fetches(proxy) -> list[str]:
    return [line for line in proxy.log().splitlines() if "pkgcache.upstream" in line]


def client(tmp_path: Path, name: str, server_url: str) -> PacmanClient:
    return PacmanClient(tmp_path / f"client-{name}", server_url)


def test_pacman_sync_and_download_through_the_cache(
    repo, mirror, make_proxy, tmp_path: Path
):
    proxy = make_proxy([mirror.url])
    expected = repo.package(PACKAGE).read_bytes()

    a = client(tmp_path, "a", proxy.url)
    a.sync()
    downloaded = a.download("hello")
    assert downloaded.name == PACKAGE
    assert downloaded.read_bytes() == expected
    assert proxy.cached(PACKAGE_PATH).read_bytes() == expected
    assert mirror.count(PACKAGE_PATH) == 1

    b = client(tmp_path, "b", proxy.url)
    b.sync()
    assert b.download("hello").read_bytes() == expected
    # B's package came from the cache, not from the origin.
    assert mirror.count(PACKAGE_PATH) == 1


def test_pacman_works_when_the_origin_is_gone_after_the_first_client(
    repo, mirror, make_proxy, tmp_path: Path
):
    proxy = make_proxy([mirror.url])
    expected = repo.package(PACKAGE).read_bytes()

    a = client(tmp_path, "a", proxy.url)
    a.sync()
    assert a.download("hello").read_bytes() == expected
    fetches = upstream_fetches(proxy)
    # StaticOrigin.stop() stops its loop but keeps the listening socket: a
    # request that did reach it would hang until stall_timeout, not fail.
    mirror.stop()

    b = client(tmp_path, "b", proxy.url)
    b.sync()
    assert b.download("hello").read_bytes() == expected
    # Everything B asked for came from the cache: no new upstream fetch.
    assert upstream_fetches(proxy) == fetches
    assert mirror.count(PACKAGE_PATH) == 1
