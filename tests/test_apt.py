"""apt-get through package-cache, against a real signed repository.

Today package-cache is a generic cache: every file, index files included,
is kept forever once fetched. So apt works through it for a repository
that does not change, which is what these tests check; a repository that
publishes again is the coming "repositories" feature's business.
"""

from __future__ import annotations

import shutil
import tempfile
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
