"""Prefetch with the real clients: after a pass, the newer version of what
a client downloaded is in the cache before anyone asks, and the next
client's install makes no upstream request for it.

Each test gives a repository ``prefetch = "2s"`` (the first pass runs one
interval after start) or starts a pass with ``POST /.pkgcache/prefetch``,
and waits on the pass's report at ``GET /.pkgcache/prefetch``; the
proxy's clock is moved past ``fresh_for`` so the pass revalidates the
indexes, as a client would.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aptrepo import AptClient, AptRepo
from tests.conftest import wait_until
from tests.static_origin import StaticOrigin
from tests.test_digests import metric

FRESH_FOR = 600

needs_apt = pytest.mark.skipif(
    shutil.which("apt-ftparchive") is None or shutil.which("apt-get") is None,
    reason="apt-ftparchive and apt-get are needed (Debian: apt-utils and apt)",
)


def one_repository(make_proxy: Any, **repository: Any) -> Any:
    """A proxy of one ``[[repository]]`` and no top-level sources."""
    return make_proxy([], repository=[repository])


def passes(proxy: Any) -> dict[str, Any]:
    return json.loads(proxy.request("/.pkgcache/prefetch").body)


def wait_for_pass(proxy: Any, repository: str, after: float = 0.0) -> dict[str, Any]:
    """The report of the first pass of ``repository`` that started after
    ``after`` (the daemon's clock), once it finished."""

    def done() -> dict[str, Any] | None:
        last = passes(proxy)["last"].get(repository)
        if last and last["finished"] is not None and last["started"] > after:
            return last
        return None

    assert wait_until(lambda: done() is not None, timeout=60), proxy.log()[-3000:]
    report = done()
    assert report is not None
    return report


def start_pass(proxy: Any, repository: str) -> float:
    """Start a pass now; returns a time just before it (the daemon's)."""
    before = passes(proxy)["last"].get(repository, {}).get("started", 0.0)
    response = proxy.request(f"/.pkgcache/prefetch?repository={repository}", "POST")
    assert response.status == 202, response.body
    return before


# apt -----------------------------------------------------------------------


@pytest.fixture
def apt_repo(tmp_path: Path) -> Iterator[AptRepo]:
    gnupghome = Path(tempfile.mkdtemp(prefix="pkgcache-gpg-"))
    built = AptRepo(tmp_path / "repo", gnupghome)
    try:
        built.add_package("hello-x", "1.0")
        built.add_package("other", "1.0")
        built.publish()
        yield built
    finally:
        built.close()
        shutil.rmtree(gnupghome, ignore_errors=True)


@needs_apt
def test_apt_a_pass_fetches_the_new_version_of_what_a_client_downloaded(
    tmp_path: Path, apt_repo: AptRepo, make_proxy: Any
) -> None:
    mirror = StaticOrigin(apt_repo.root).start()
    try:
        proxy = one_repository(
            make_proxy,
            name="debian",
            prefix="/debian/",
            kind="debian",
            sources=[mirror.url],
            fresh_for=FRESH_FOR,
            prefetch="2s",
        )
        line = f"deb [signed-by={apt_repo.keyring}] {proxy.url}/debian/ stable main"
        first = AptClient(tmp_path / "client-a", line)
        first.update()
        first.download("hello-x", tmp_path / "got-a")

        apt_repo.add_package("hello-x", "2.0")
        apt_repo.add_package("other", "2.0")
        apt_repo.publish()
        proxy.advance(FRESH_FOR + 1)
        new_deb = "/" + apt_repo.pool_path("hello-x", "2.0")
        assert mirror.requests[new_deb] == 0

        # The timer's pass: one interval after start, then every interval.
        report = wait_for_pass(proxy, "debian")
        while report["files"].get("fetched", 0) == 0:
            report = wait_for_pass(proxy, "debian", after=report["started"])
        assert report["files"]["fetched"] == 1, report
        assert mirror.requests[new_deb] == 1
        # Nobody downloaded "other": its new version is not fetched.
        assert mirror.requests["/" + apt_repo.pool_path("other", "2.0")] == 0
        assert metric(proxy, "pkgcache_prefetch_files_total", outcome="fetched") == 1

        second = AptClient(tmp_path / "client-b", line)
        second.update()
        assert second.candidate("hello-x") == "2.0"
        got = second.download("hello-x", tmp_path / "got-b")
        assert got.read_bytes() == (apt_repo.root / new_deb.lstrip("/")).read_bytes()
        assert mirror.requests[new_deb] == 1  # served from the cache
        assert metric(proxy, "pkgcache_prefetch_used_total", repository="debian") == 1
    finally:
        mirror.stop()


# pip -----------------------------------------------------------------------

#: Wheel tags of the new release: the one the client took, and two others.
TAKEN = "py3-none-any"
OTHER_TAGS = ("cp312-cp312-manylinux_2_17_x86_64", "cp311-cp311-win_amd64")


def test_pip_a_pass_fetches_the_matching_wheel_and_its_metadata_only(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.pypirepo import PypiRepo, pip, serve

    repo = PypiRepo(tmp_path / "pypi")
    repo.add_wheel("alpha", "1.0")
    with serve(repo) as (index, files):
        proxy = one_repository(
            make_proxy,
            name="pypi",
            prefix="/pypi/",
            kind="pypi",
            sources=[index.url],
            file_sources=[files.url],
            fresh_for=FRESH_FOR,
        )
        simple = f"{proxy.url}/pypi/simple/"
        pip(
            tmp_path / "a",
            "download",
            "--no-deps",
            "-d",
            str(tmp_path / "got-a"),
            "-i",
            simple,
            "alpha",
        )
        new = repo.add_wheel("alpha", "1.1", tag=TAKEN)
        others = [repo.add_wheel("alpha", "1.1", tag=tag) for tag in OTHER_TAGS]
        proxy.advance(FRESH_FOR + 1)

        before = start_pass(proxy, "pypi")
        report = wait_for_pass(proxy, "pypi", after=before)
        assert report["files"].get("fetched") == 2, report  # the wheel, .metadata
        assert files.count(new.filename) == 1
        assert files.count(new.filename + ".metadata") == 1
        for other in others:
            assert files.count(other.filename) == 0
        # The status page shows the repository's last pass.
        status = json.loads(proxy.request("/.pkgcache/status.json").body)
        assert status["prefetch"]["pypi"]["files"]["fetched"] == 2
        page = proxy.request("/.pkgcache/status").body.decode()
        assert "<h2>Prefetch</h2>" in page and "fetched 2" in page

        got = tmp_path / "got-b"
        pip(
            tmp_path / "b",
            "download",
            "--no-deps",
            "-d",
            str(got),
            "-i",
            simple,
            "alpha",
        )
        assert (got / new.filename).read_bytes() == repo.file(new).read_bytes()
        assert files.count(new.filename) == 1  # the client's came from the cache
        assert metric(proxy, "pkgcache_prefetch_used_total", repository="pypi") >= 1


# npm -----------------------------------------------------------------------


def test_npm_a_pass_fetches_the_tarball_latest_moved_to(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.npmregistry import NpmClient, NpmRegistry, missing_tools, pack

    if missing_tools():
        pytest.skip(f"needs npm and node; missing: {', '.join(missing_tools())}")
    one, util, newer = pack(
        [
            ("pkgcache-demo-b", "1.0.0", {}),
            ("@pkgcache-demo/util", "1.0.0", {}),
            ("pkgcache-demo-b", "1.1.0", {}),
        ],
        tmp_path / "packed",
    )
    registry = NpmRegistry(tmp_path / "registry").start()
    try:
        registry.publish(one, on_cdn=True)
        registry.publish(util)
        proxy = one_repository(
            make_proxy,
            name="npm",
            prefix="/npm/",
            kind="npm",
            sources=[registry.url],
            file_sources=[registry.cdn.url],
            fresh_for=FRESH_FOR,
        )
        wanted = {"pkgcache-demo-b": "^1.0.0", "@pkgcache-demo/util": "^1.0.0"}
        first = NpmClient(tmp_path / "client-a", f"{proxy.url}/npm/", wanted)
        first.install()
        assert first.installed("pkgcache-demo-b") == "1.0.0"

        registry.publish(newer, on_cdn=True)
        proxy.advance(FRESH_FOR + 1)
        before = start_pass(proxy, "npm")
        report = wait_for_pass(proxy, "npm", after=before)
        assert report["files"].get("fetched") == 1, report
        assert registry.cdn.count(newer.filename) == 1
        # util did not move: nothing fetched for it.
        assert registry.count(util.filename) == 1

        second = NpmClient(tmp_path / "client-b", f"{proxy.url}/npm/", wanted)
        second.install()
        assert second.installed("pkgcache-demo-b") == "1.1.0"
        assert registry.cdn.count(newer.filename) == 1
        assert metric(proxy, "pkgcache_prefetch_used_total", repository="npm") == 1
    finally:
        registry.stop()


# The pass's limits and failures (pip: the quickest client to set up) --------


def pypi_proxy(make_proxy: Any, index: Any, files: Any, **settings: Any) -> Any:
    return make_proxy(
        [],
        repository=[
            {
                "name": "pypi",
                "prefix": "/pypi/",
                "kind": "pypi",
                "sources": [index.url],
                "file_sources": [files.url],
                "fresh_for": FRESH_FOR,
                "stale_if_error": "30d",
            }
        ],
        **settings,
    )


def download(tmp_path: Path, proxy: Any, name: str, *projects: str) -> None:
    from tests.pypirepo import pip

    simple = f"{proxy.url}/pypi/simple/"
    into = str(tmp_path / f"got-{name}")
    pip(tmp_path / name, "download", "--no-deps", "-d", into, "-i", simple, *projects)


def test_the_budget_stops_a_pass(tmp_path: Path, make_proxy: Any) -> None:
    from tests.pypirepo import PypiRepo, serve

    repo = PypiRepo(tmp_path / "pypi")
    repo.add_wheel("alpha", "1.0")
    repo.add_wheel("beta", "1.0")
    with serve(repo) as (index, files):
        new = [repo.add_wheel(name, "1.0.post1") for name in ("alpha", "beta")]
        # Room for one new wheel, not two.
        budget = max(dist.size for dist in new) + 10
        proxy = pypi_proxy(make_proxy, index, files, prefetch_budget=budget)
        download(tmp_path, proxy, "a", "alpha==1.0", "beta==1.0")
        proxy.advance(FRESH_FOR + 1)
        report = wait_for_pass(proxy, "pypi", after=start_pass(proxy, "pypi"))
        assert report["stopped"] == "budget", report
        assert sum(files.count(dist.filename) for dist in new) == 1
        assert report["bytes"] <= budget
        stopped = metric(proxy, "pkgcache_prefetch_stopped_total", reason="budget")
        assert stopped == 1
        assert "stopped: budget" in proxy.log()


def test_a_package_unused_for_prefetch_unused_after_is_no_longer_followed(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.pypirepo import PypiRepo, serve

    repo = PypiRepo(tmp_path / "pypi")
    repo.add_wheel("alpha", "1.0")
    with serve(repo) as (index, files):
        proxy = pypi_proxy(make_proxy, index, files, prefetch_unused_after="1h")
        download(tmp_path, proxy, "a", "alpha")
        new = repo.add_wheel("alpha", "1.1")
        proxy.advance(2 * 3600)
        report = wait_for_pass(proxy, "pypi", after=start_pass(proxy, "pypi"))
        assert report["files"] == {} and report["indexes"] == 0, report
        assert files.count(new.filename) == 0
        saved = json.loads((proxy.cache / ".prefetch" / "pypi.json").read_text())
        assert saved["paths"] == {}


def test_a_client_joins_the_download_a_pass_started(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.pypirepo import PypiRepo, serve

    repo = PypiRepo(tmp_path / "pypi")
    repo.add_wheel("alpha", "1.0")
    with serve(repo) as (index, files):
        proxy = pypi_proxy(make_proxy, index, files)
        download(tmp_path, proxy, "a", "alpha")
        new = repo.add_wheel("alpha", "1.1")
        arrived, release = files.hold(new.filename)
        proxy.advance(FRESH_FOR + 1)
        before = start_pass(proxy, "pypi")
        assert arrived.wait(30), "the pass never asked the origin"
        client = proxy.open("/pypi/" + new.path)  # joins, waits with the pass
        release.set()
        body = client.read()
        assert client.status == 200
        assert body == repo.file(new).read_bytes()
        assert client.getheader("X-Package-Cache") == "joined"
        report = wait_for_pass(proxy, "pypi", after=before)
        assert report["files"]["fetched"] >= 1, report
        assert files.count(new.filename) == 1


def test_with_the_origin_down_a_pass_gives_up_and_nothing_served_changes(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.pypirepo import PypiRepo, serve

    repo = PypiRepo(tmp_path / "pypi")
    old = repo.add_wheel("alpha", "1.0")
    with serve(repo) as (index, files):
        proxy = pypi_proxy(make_proxy, index, files)
        download(tmp_path, proxy, "a", "alpha")
    # Both origins are gone now.
    proxy.advance(FRESH_FOR + 1)
    report = wait_for_pass(proxy, "pypi", after=start_pass(proxy, "pypi"))
    assert report["files"].get("fetched", 0) == 0, report
    assert "prefetch pypi" in proxy.log()
    # The stored page and wheel still serve a client.
    download(tmp_path, proxy, "b", "alpha")
    assert (tmp_path / "got-b" / old.filename).read_bytes() == repo.file(
        old
    ).read_bytes()


# go and cargo: the newest version in @v/list, and in the index file -------


def test_go_a_pass_fetches_the_newest_module_version(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.gorepo import GoRepo, Module

    repo = GoRepo(tmp_path / "goproxy")
    module = "example.com/pkgcache/prefetched"
    repo.publish(Module(module, "v1.0.0", {"p.go": b"package prefetched\n"}))
    origin = StaticOrigin(repo.root).start()
    try:
        proxy = one_repository(
            make_proxy,
            name="go",
            prefix="/go/",
            kind="go",
            sources=[origin.url + "/proxy"],
            sumdb=origin.url + "/sumdb",
            fresh_for=FRESH_FOR,
        )
        base = f"/go/{module}/@v/"
        for name in ("list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"):
            assert proxy.request(base + name).status == 200
        repo.publish(Module(module, "v1.1.0", {"p.go": b"package prefetched // 2\n"}))
        proxy.advance(FRESH_FOR + 1)
        report = wait_for_pass(proxy, "go", after=start_pass(proxy, "go"))
        assert report["files"].get("fetched") == 3, report  # .info .mod .zip
        zip_path = f"/proxy/{module}/@v/v1.1.0.zip"
        assert origin.requests[zip_path] == 1
        answer = proxy.request(base + "v1.1.0.zip")
        assert answer.status == 200
        assert answer.headers["X-Package-Cache"] == "hit"
        assert origin.requests[zip_path] == 1
    finally:
        origin.stop()


def test_cargo_a_pass_fetches_the_newest_crate_checked_against_its_index(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.cargorepo import SparseRegistry, make_crate

    registry = SparseRegistry(tmp_path / "registry").start()
    try:
        old, new = make_crate("prefetchme", "1.0.0"), make_crate("prefetchme", "1.1.0")
        yanked = make_crate("prefetchme", "1.2.0")
        registry.publish(old)
        proxy = one_repository(
            make_proxy,
            name="crates",
            prefix="/crates/",
            kind="cargo",
            sources=[registry.index_url],
            file_sources=[registry.dl_template],
            fresh_for=FRESH_FOR,
        )
        assert proxy.request(old.cache_path).body == old.data
        registry.publish(new)
        registry.publish(yanked)
        index = registry.root / "index" / "pr" / "ef" / "prefetchme"
        lines = index.read_text().splitlines()
        lines[-1] = lines[-1].replace('"yanked": false', '"yanked": true')
        index.write_text("\n".join(lines) + "\n")
        proxy.advance(FRESH_FOR + 1)
        report = wait_for_pass(proxy, "crates", after=start_pass(proxy, "crates"))
        assert report["files"].get("fetched") == 1, report
        assert registry.count(new.file) == 1
        assert registry.count(yanked.file) == 0  # yanked: never prefetched
        answer = proxy.request(new.cache_path)
        assert answer.body == new.data
        assert answer.headers["X-Package-Cache"] == "hit"
        assert registry.count(new.file) == 1
    finally:
        registry.stop()


def test_maven_a_pass_fetches_the_new_release_of_what_a_client_took(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.mavenrepo import GROUP, MavenRepo

    repo = MavenRepo(tmp_path / "m2")
    folder = f"{GROUP.replace('.', '/')}/lib"

    def metadata(*versions: str) -> None:
        listed = "".join(f"<version>{v}</version>" for v in versions)
        repo.write(
            f"{folder}/maven-metadata.xml",
            (
                f"<metadata><groupId>{GROUP}</groupId><artifactId>lib</artifactId>"
                f"<versioning><release>{versions[-1]}</release>"
                f"<versions>{listed}</versions></versioning></metadata>"
            ).encode(),
        )

    old = repo.release("lib", "1.0")
    metadata("1.0")
    origin = StaticOrigin(repo.root).start()
    try:
        proxy = one_repository(
            make_proxy,
            name="central",
            prefix="/maven2/",
            kind="maven",
            sources=[origin.url],
            fresh_for=FRESH_FOR,
        )
        for path in (f"{folder}/maven-metadata.xml", old, old[:-4] + ".pom"):
            assert proxy.request("/maven2/" + path).status == 200
        new = repo.release("lib", "1.1")
        metadata("1.0", "1.1")
        proxy.advance(FRESH_FOR + 1)
        report = wait_for_pass(proxy, "central", after=start_pass(proxy, "central"))
        assert report["files"].get("fetched") == 2, report  # the jar and the pom
        assert origin.requests["/" + new] == 1
        assert origin.requests["/" + new + ".sha512"] == 1  # checked on arrival
        answer = proxy.request("/maven2/" + new)
        assert answer.status == 200
        assert answer.headers["X-Package-Cache"] == "hit"
        assert origin.requests["/" + new] == 1
    finally:
        origin.stop()


def test_a_pass_stops_before_it_would_cross_max_size(
    tmp_path: Path, make_proxy: Any
) -> None:
    from tests.pypirepo import PypiRepo, serve
    from tests.test_reload import reload

    repo = PypiRepo(tmp_path / "pypi")
    repo.add_wheel("alpha", "1.0")
    with serve(repo) as (index, files):
        proxy = pypi_proxy(make_proxy, index, files)
        download(tmp_path, proxy, "a", "alpha")
        new = repo.add_wheel("alpha", "1.1")
        assert wait_until(lambda: metric(proxy, "pkgcache_cache_files") == 3)
        stored = metric(proxy, "pkgcache_cache_bytes")
        # Room for the page's refresh, not for the new wheel.
        reload(proxy, max_size=int(stored) + 600)
        proxy.advance(FRESH_FOR + 1)
        report = wait_for_pass(proxy, "pypi", after=start_pass(proxy, "pypi"))
        assert report["stopped"] == "max_size", report
        assert files.count(new.filename) == 0
        assert metric(proxy, "pkgcache_prefetch_stopped_total", reason="max_size") == 1
