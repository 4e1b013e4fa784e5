"""apt-get through package-cache, against a real signed repository.

With the top-level ``sources`` (a repository of kind generic at ``/``)
every file, index files included, is kept forever once fetched: apt works
through that for a repository that does not change. A ``[[repository]]``
of kind debian revalidates the index files after ``fresh_for``: apt sees
a new publication then and not before, updates from the stale copies when
the origin is gone, and works the same with package-cache as its
``Acquire::http::Proxy``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aptrepo import AptClient, AptRepo
from tests.static_origin import StaticOrigin

pytestmark = pytest.mark.skipif(
    shutil.which("apt-ftparchive") is None or shutil.which("apt-get") is None,
    reason="apt-ftparchive and apt-get are needed (Debian: apt-utils and apt)",
)

DEB = "/pool/main/h/hello/hello_1.0_all.deb"
IN_RELEASE = "/dists/stable/InRelease"
#: The debian repository's fresh_for, in seconds: long, so no real delay
#: makes an index stale; tests move the proxy's clock past it.
FRESH_FOR = 600


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[AptRepo]:
    """A signed repository holding hello 1.0."""
    # gpg-agent puts its socket in GNUPGHOME: keep that path short.
    gnupghome = Path(tempfile.mkdtemp(prefix="pkgcache-gpg-"))
    built = AptRepo(tmp_path / "repo", gnupghome)
    try:
        built.add_package("hello", "1.0")
        built.publish()
        yield built
    finally:
        built.close()
        shutil.rmtree(gnupghome, ignore_errors=True)


@pytest.fixture
def mirror(repo: AptRepo) -> Iterator[StaticOrigin]:
    served = StaticOrigin(repo.root).start()
    yield served
    served.stop()


def client(tmp_path: Path, name: str, repo: AptRepo, proxy: Any) -> AptClient:
    line = f"deb [signed-by={repo.keyring}] {proxy.url}/ stable main"
    return AptClient(tmp_path / name, line)


def upstream_fetches(proxy: Any) -> list[str]:
    """The proxy's log lines for its requests to the origin."""
    return [line for line in proxy.log().splitlines() if "pkgcache.upstream:" in line]


def test_apt_update_and_download_through_the_cache(
    tmp_path: Path, repo: AptRepo, mirror: StaticOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([mirror.url])
    original = (repo.root / DEB.lstrip("/")).read_bytes()

    first = client(tmp_path, "client-a", repo, proxy)
    first.update()
    assert first.candidate("hello") == "1.0"
    deb = first.download("hello", tmp_path / "got-a")
    assert deb.read_bytes() == original
    assert proxy.cached(DEB).read_bytes() == original
    assert mirror.count(DEB) == 1
    in_release = mirror.count("/dists/stable/InRelease")
    assert in_release >= 1

    second = client(tmp_path, "client-b", repo, proxy)
    second.update()
    assert second.candidate("hello") == "1.0"
    assert second.download("hello", tmp_path / "got-b").read_bytes() == original
    # The .deb came from the cache; so did InRelease, since package-cache
    # keeps every file forever today (the coming repositories feature
    # revalidates index files: then this count grows).
    assert mirror.count(DEB) == 1
    assert mirror.count("/dists/stable/InRelease") == in_release


def test_apt_update_works_when_the_origin_is_gone_after_the_first_client(
    tmp_path: Path, repo: AptRepo, mirror: StaticOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([mirror.url])
    original = (repo.root / DEB.lstrip("/")).read_bytes()

    first = client(tmp_path, "client-a", repo, proxy)
    first.update()
    assert first.download("hello", tmp_path / "got-a").read_bytes() == original
    fetched = upstream_fetches(proxy)
    assert len(fetched) == 3, fetched  # InRelease, Packages.gz, the .deb
    mirror.stop()

    second = client(tmp_path, "client-b", repo, proxy)
    second.update()
    assert second.candidate("hello") == "1.0"
    assert second.download("hello", tmp_path / "got-b").read_bytes() == original
    # Everything came from the cache: the proxy never tried the origin again.
    assert upstream_fetches(proxy) == fetched


def debian(mirror: StaticOrigin, fresh_for: float = FRESH_FOR) -> dict[str, Any]:
    """The repository at /debian/ whose source is the mirror's root."""
    return {
        "name": "debian",
        "prefix": "/debian/",
        "kind": "debian",
        "sources": [mirror.url],
        "fresh_for": f"{fresh_for}s",
    }


def mirror_client(tmp_path: Path, name: str, repo: AptRepo, proxy: Any) -> AptClient:
    """A client with package-cache's /debian/ as its source (a mirror)."""
    line = f"deb [signed-by={repo.keyring}] {proxy.url}/debian/ stable main"
    return AptClient(tmp_path / name, line)


def access(proxy: Any, path: str) -> list[str]:
    """The proxy's access lines for requests whose target ends in ``path``."""
    return [
        line
        for line in proxy.log().splitlines()
        if "pkgcache.access" in line and f'{path}" ' in line
    ]


def results(lines: list[str]) -> list[str]:
    """The result word of each access line (hit, miss, refreshed, ...):
    ``... "GET PATH" STATUS BYTES RESULT [unclean] [verified=ALG] TIME``."""
    return [line.split('" ', 1)[1].split()[2] for line in lines]


def test_apt_sees_a_new_version_after_fresh_for_and_not_before(
    tmp_path: Path, repo: AptRepo, mirror: StaticOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([], repository=[debian(mirror)])

    first = mirror_client(tmp_path, "client-a", repo, proxy)
    first.update()
    assert first.candidate("hello") == "1.0"
    fetched = mirror.count(IN_RELEASE)
    assert fetched == 1

    repo.add_package("hello", "2.0")
    repo.publish()
    second = mirror_client(tmp_path, "client-b", repo, proxy)
    second.update()
    # Within fresh_for: the cached indexes, without asking the origin.
    assert second.candidate("hello") == "1.0"
    assert mirror.count(IN_RELEASE) == fetched, access(proxy, IN_RELEASE)

    proxy.advance(FRESH_FOR + 1)
    first.update()
    assert first.candidate("hello") == "2.0"
    deb = first.download("hello", tmp_path / "got-a")
    assert deb.name == "hello_2.0_all.deb"
    assert deb.read_bytes() == (repo.root / repo.pool_path("hello", "2.0")).read_bytes()
    lines = access(proxy, IN_RELEASE)
    assert results(lines)[-1] == "refreshed", lines
    assert mirror.count(IN_RELEASE) == fetched + 1
    new = (repo.dists / "InRelease").read_bytes()
    assert proxy.cached(f"/debian{IN_RELEASE}").read_bytes() == new


def test_apt_update_works_from_stale_copies_when_the_origin_stops(
    tmp_path: Path, repo: AptRepo, mirror: StaticOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([], repository=[debian(mirror, fresh_for=1)])
    original = (repo.root / DEB.lstrip("/")).read_bytes()

    first = mirror_client(tmp_path, "client-a", repo, proxy)
    first.update()
    assert first.download("hello", tmp_path / "got-a").read_bytes() == original
    mirror.stop()
    time.sleep(1.3)  # real time on purpose: one test where no clock is moved

    second = mirror_client(tmp_path, "client-b", repo, proxy)
    said = second.update()  # raises on Err:, E: and W: lines too
    assert "Err:" not in said
    assert second.candidate("hello") == "1.0"
    lines = access(proxy, IN_RELEASE)
    assert results(lines)[-1] == "stale", lines
    assert "stale" in results(access(proxy, "/Packages.gz")), proxy.log()
    assert second.download("hello", tmp_path / "got-b").read_bytes() == original
    # The pool file is immutable: a hit, however stale the indexes.
    assert results(access(proxy, DEB)) == ["miss", "hit"], proxy.log()


def test_apt_through_acquire_http_proxy(
    tmp_path: Path, repo: AptRepo, mirror: StaticOrigin, make_proxy: Any
) -> None:
    proxy = make_proxy([], repository=[debian(mirror)])
    original = (repo.root / DEB.lstrip("/")).read_bytes()
    # deb.example.org need not resolve: apt asks the proxy for the URL.
    line = f"deb [signed-by={repo.keyring}] http://deb.example.org/debian/ stable main"
    through = AptClient(tmp_path / "client-a", line, proxy=f"{proxy.url}/")

    through.update()
    assert through.candidate("hello") == "1.0"
    assert through.download("hello", tmp_path / "got-a").read_bytes() == original
    assert mirror.count(IN_RELEASE) == 1
    assert mirror.count(DEB) == 1
    assert proxy.cached(f"/debian{DEB}").read_bytes() == original
    # apt sent the absolute form to package-cache (not DIRECT to the host).
    lines = access(proxy, IN_RELEASE)
    assert len(lines) == 1, lines
    assert f'"GET http://deb.example.org/debian{IN_RELEASE}"' in lines[0], lines
