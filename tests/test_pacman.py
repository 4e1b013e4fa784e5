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


# The repositories feature: pacman's Server points at the prefix of a
# repository of kind "arch", whose core.db is volatile (revalidated after
# fresh_for) and whose packages are immutable.

PREFIX = "/archlinux"
DB_PATH = f"{PREFIX}/core/os/x86_64/core.db"
#: core.db's fresh_for, in seconds: long, so no real delay makes it stale;
#: tests move the proxy's clock past it.
FRESH_FOR = 600


def arch(mirror: StaticOrigin) -> dict:
    """The repository: /archlinux/core/os/x86_64/X is origin/core/os/x86_64/X."""
    return {
        "name": "arch",
        "prefix": f"{PREFIX}/",
        "kind": "arch",
        "sources": [mirror.url],
        "fresh_for": f"{FRESH_FOR}s",
    }


def access_results(proxy, path: str) -> list[str]:
    """The X-Package-Cache word of each access line for a GET of ``path``."""
    results = []
    for line in proxy.log().splitlines():
        if "pkgcache.access" in line and f'"GET {path}"' in line:
            # ... "GET PATH" STATUS BYTES RESULT [unclean] TIME
            results.append(line.split(f'"GET {path}"', 1)[1].split()[2])
    return results


def test_pacman_sees_a_republished_database_after_fresh_for_and_not_before(
    repo, mirror, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[arch(mirror)])
    server = proxy.url + PREFIX

    a = client(tmp_path, "a", server)
    a.sync()
    assert a.version("hello") == "1.0-1"
    assert mirror.count("/core.db") == 1

    new = repo.add_package("hello", "1.1-1")
    repo.publish()  # a later mtime, so a later Last-Modified

    # Within fresh_for: the cached core.db, without asking the origin.
    b = client(tmp_path, "b", server)
    b.sync()
    assert b.version("hello") == "1.0-1"
    assert mirror.count("/core.db") == 1
    assert access_results(proxy, DB_PATH) == ["miss", "hit"], proxy.log()

    # Past fresh_for: A's -Sy (with If-Modified-Since) gets the new database.
    proxy.advance(FRESH_FOR + 1)
    a.sync()
    assert a.version("hello") == "1.1-1"
    assert mirror.count("/core.db") == 2
    assert access_results(proxy, DB_PATH) == ["miss", "hit", "refreshed"], proxy.log()
    downloaded = a.download("hello", "1.1-1")
    assert downloaded.name == new.name
    assert downloaded.read_bytes() == new.read_bytes()
    assert proxy.cached(f"{PREFIX}/core/os/x86_64/{new.name}").read_bytes() == (
        new.read_bytes()
    )
    assert mirror.count(f"/{new.name}") == 1


def test_pacman_syncs_from_stale_copies_when_the_origin_stops(
    repo, mirror, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[arch(mirror)])
    server = proxy.url + PREFIX
    expected = repo.package(PACKAGE).read_bytes()

    a = client(tmp_path, "a", server)
    a.sync()
    assert a.download("hello").read_bytes() == expected
    mirror.stop()
    proxy.advance(FRESH_FOR + 1)

    b = client(tmp_path, "b", server)
    b.sync()
    assert b.version("hello") == "1.0-1"
    downloaded = b.download("hello")
    assert downloaded.name == PACKAGE
    assert downloaded.read_bytes() == expected
    assert access_results(proxy, DB_PATH) == ["miss", "stale"], proxy.log()
    assert access_results(proxy, f"{PREFIX}{PACKAGE_PATH}") == ["miss", "hit"]
    assert mirror.count("/core.db") == 1
    assert mirror.count(PACKAGE_PATH) == 1
