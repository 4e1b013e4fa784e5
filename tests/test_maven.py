"""Maven through package-cache: a repository of kind "maven" whose
``maven-metadata.xml`` files and ``-SNAPSHOT/`` folders are volatile and
whose other files are immutable, each artifact checked against the
strongest sidecar its repository publishes before it becomes a hit.

Debian's ``mvn`` resolves through the cache from two static origins: the
test's own repository and a copy of Debian's ``/usr/share/maven-repo``
(the dependency plugin and what it needs). A JVM is slow to start, so
one test makes every ``mvn`` run; the others ask with plain HTTP."""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pkgcache.digests.sidecars import parse_sidecar
from pkgcache.digests.values import Digest
from pkgcache.settings import RepositorySettings
from pkgcache.verify import Tally, Wrong, verify
from tests.conftest import Proxy, wait_until
from tests.mavenrepo import GROUP, MavenRepo, Mvn, debian_plugins, missing_tools
from tests.static_origin import StaticOrigin
from tests.test_cli import run_cli

PREFIX = "/maven2/"
#: Metadata's fresh_for: long, so no real delay makes it stale; tests move
#: the proxy's clock past it.
FRESH_FOR = 60


@pytest.fixture
def artifacts(tmp_path: Path) -> Iterator[tuple[MavenRepo, StaticOrigin]]:
    repo = MavenRepo(tmp_path / "artifacts")
    repo.root.mkdir()
    server = StaticOrigin(repo.root).start()
    yield repo, server
    server.stop()


def maven_repository(*origins: StaticOrigin, **settings: Any) -> dict[str, Any]:
    return {
        "name": "central",
        "prefix": PREFIX,
        "kind": "maven",
        "sources": [origin.url for origin in origins],
        "fresh_for": FRESH_FOR,
        # Remembered 404s (Debian's files have no sidecars) outlive the
        # clock moves; a stale copy may be served for an hour.
        "negative_for": 3600,
        "stale_if_error": 3600,
        **settings,
    }


def results(proxy: Proxy, path: str, answered: int = 1) -> list[str]:
    """The result word of each logged GET of ``path``, once ``answered``
    of them are logged (an access line is written just after its
    response ends)."""

    def found() -> list[str]:
        return [line.split()[2] for line in _access_lines(proxy, path)]

    wait_until(lambda: len(found()) >= answered, timeout=5)
    return found()


def _access_lines(proxy: Proxy, path: str) -> list[str]:
    """What follows ``"GET path"`` in each of its access lines."""
    return [
        line.split(f'"GET {path}"', 1)[1]
        for line in proxy.log().splitlines()
        if "pkgcache.access" in line and f'"GET {path}"' in line
    ]


def metric(proxy: Proxy, name: str) -> float:
    text = proxy.request("/.pkgcache/metrics").body.decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and 'repository="central"' in line
    )


# -- mvn ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugins_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return debian_plugins(tmp_path_factory.mktemp("maven-plugins") / "repo")


@pytest.mark.skipif(bool(missing_tools()), reason=f"needs {missing_tools()}")
@pytest.mark.timeout(300)  # three JVMs, each a few seconds before its first request
def test_mvn_resolves_through_the_cache_then_all_hits_then_with_origins_gone(
    artifacts, plugins_folder: Path, make_proxy, tmp_path: Path
):
    repo, origin = artifacts
    lib = repo.release("demo-lib", "1.0")  # .sha512, .sha1, .md5
    snap = repo.snapshot("demo-snap", "1.0-SNAPSHOT", build=1)
    app = repo.release(
        "demo-app", "1.0", ("demo-lib:1.0", "demo-snap:1.0-SNAPSHOT"), ("sha1",)
    )
    plugins = StaticOrigin(plugins_folder).start()
    try:
        proxy = make_proxy(
            [], repository=[maven_repository(origin, plugins)], verbose=2
        )
        url = proxy.url + PREFIX

        first = Mvn(tmp_path / "first", url)
        first.get(f"{GROUP}:demo-app:1.0")
        # Byte for byte what the origin has, in the client and the cache.
        snap_pom = snap.removesuffix(".jar") + ".pom"
        for path in (lib, app, snap, snap_pom, lib + ".sha1"):
            original = (repo.root / path).read_bytes()
            assert proxy.cached(PREFIX + path).read_bytes() == original, path
        for path in (lib, app):
            assert first.file(path).read_bytes() == (repo.root / path).read_bytes()
        snapshot_jar = first.file(
            repo.folder("demo-snap", "1.0-SNAPSHOT") + "/demo-snap-1.0-SNAPSHOT.jar"
        )
        assert snapshot_jar.read_bytes() == (repo.root / snap).read_bytes()
        # The jar was checked against its strongest sidecar before it was
        # a hit; Debian's files have none and are stored unverified.
        assert "verified=sha512" in _access_line(proxy, PREFIX + lib)
        assert "verified=sha1" in _access_line(proxy, PREFIX + app)
        assert origin.requests[f"/{lib}"] == 1
        assert origin.requests[f"/{lib}.sha512"] == 1
        assert metric(proxy, "pkgcache_unverified_files_total") > 50
        asked = (sum(origin.requests.values()), sum(plugins.requests.values()))

        second = Mvn(tmp_path / "second", url)
        second.get(f"{GROUP}:demo-app:1.0")
        assert second.file(lib).read_bytes() == (repo.root / lib).read_bytes()
        # A clean client: every file, sidecar and 404 came from the cache.
        assert (sum(origin.requests.values()), sum(plugins.requests.values())) == asked
        assert results(proxy, PREFIX + lib, 2) == ["miss", "hit"]

        origin.stop()
        plugins.stop()
        proxy.advance(FRESH_FOR + 1)
        gone = Mvn(tmp_path / "gone", url)
        gone.get(f"{GROUP}:demo-app:1.0")
        assert gone.file(app).read_bytes() == (repo.root / app).read_bytes()
        metadata = PREFIX + repo.folder("demo-snap", "1.0-SNAPSHOT")
        assert results(proxy, metadata + "/maven-metadata.xml", 3)[-1] == "stale"
    finally:
        plugins.stop()


def _access_line(proxy: Proxy, path: str) -> str:
    """The first access line of ``path``, once it is logged."""
    wait_until(lambda: bool(_access_lines(proxy, path)), timeout=5)
    return _access_lines(proxy, path)[0]


# -- plain HTTP -----------------------------------------------------------


def test_snapshot_metadata_is_refreshed_after_fresh_for(artifacts, make_proxy):
    repo, origin = artifacts
    repo.snapshot("demo-snap", "1.0-SNAPSHOT", build=1)
    proxy = make_proxy([], repository=[maven_repository(origin)])
    metadata = repo.folder("demo-snap", "1.0-SNAPSHOT") + "/maven-metadata.xml"

    first = proxy.request(PREFIX + metadata)
    assert first.status == 200 and b"<buildNumber>1<" in first.body
    new_jar = repo.snapshot("demo-snap", "1.0-SNAPSHOT", build=2)
    assert proxy.request(PREFIX + metadata).body == first.body  # still fresh

    proxy.advance(FRESH_FOR + 1)
    refreshed = proxy.request(PREFIX + metadata)
    assert refreshed.body == (repo.root / metadata).read_bytes()
    assert b"<buildNumber>2<" in refreshed.body
    assert results(proxy, PREFIX + metadata, 3) == ["miss", "hit", "refreshed"]
    jar = proxy.request(PREFIX + new_jar)
    assert jar.status == 200 and jar.body == (repo.root / new_jar).read_bytes()


def test_a_jar_whose_sidecar_disagrees_is_never_stored_nor_its_sidecar(
    artifacts, make_proxy
):
    repo, origin = artifacts
    bad = repo.release("demo-bad", "1.0", sidecars=("sha1",))
    (repo.root / f"{bad}.sha1").write_text("0" * 40 + "  demo-bad-1.0.jar\n")
    # The strongest sidecar is the one checked: a right .sha1 does not
    # save a jar whose .sha512 disagrees.
    weak = repo.release("demo-weak", "1.0", sidecars=("sha512", "sha1"))
    (repo.root / f"{weak}.sha512").write_text("ab" * 64)
    good = repo.release("demo-good", "1.0", sidecars=("sha256",))
    bare = repo.release("demo-bare", "1.0", sidecars=())
    proxy = make_proxy([], repository=[maven_repository(origin)])

    for path, sidecar in ((bad, "sha1"), (weak, "sha512")):
        # The head went out as the bytes came; the last batch is held
        # back and the connection cut: no client ever has the whole jar.
        with pytest.raises(http.client.IncompleteRead):
            proxy.request(PREFIX + path)
        assert not proxy.cached(PREFIX + path).exists()
        assert not proxy.cached(f"{PREFIX}{path}.{sidecar}").exists()
    assert f"removing {PREFIX}{bad}.sha1" in proxy.log()
    assert metric(proxy, "pkgcache_digest_mismatches_total") == 2

    for path in (good, bare):
        answer = proxy.request(PREFIX + path)
        assert answer.status == 200 and answer.body == (repo.root / path).read_bytes()
        assert proxy.cached(PREFIX + path).read_bytes() == answer.body
    assert "verified=sha256" in _access_line(proxy, PREFIX + good)
    assert "verified" not in _access_line(proxy, PREFIX + bare)
    assert metric(proxy, "pkgcache_verified_files_total") >= 1
    assert metric(proxy, "pkgcache_unverified_files_total") >= 1
    # The sidecar looked up first is stored: the client's own ask is a hit.
    assert proxy.request(f"{PREFIX}{good}.sha256").status == 200
    assert results(proxy, f"{PREFIX}{good}.sha256") == ["hit"]
    assert origin.requests[f"/{good}.sha256"] == 1


def test_twenty_clients_of_one_jar_make_one_request_for_it_and_its_sidecar(
    artifacts, make_proxy
):
    repo, origin = artifacts
    path = repo.release("demo-busy", "1.0", sidecars=("sha1",))
    proxy = make_proxy([], repository=[maven_repository(origin)])
    answers: list[Any] = []
    start = threading.Barrier(20)

    def client() -> None:
        start.wait()
        answers.append(proxy.request(PREFIX + path))

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = (repo.root / path).read_bytes()
    assert [a.status for a in answers] == [200] * 20
    assert all(a.body == expected for a in answers)
    assert origin.requests[f"/{path}"] == 1
    assert origin.requests[f"/{path}.sha1"] == 1
    for missing in ("sha512", "sha256"):
        assert origin.requests[f"/{path}.{missing}"] == 1
    assert len(results(proxy, PREFIX + path, 20)) == 20
    assert "verified=sha1" in _access_line(proxy, PREFIX + path)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('kind = "mavn"', "kind must be one of"),
        ('kind = "maven", file_sources = ["http://a"]', "file_sources is for kind"),
    ],
)
def test_bad_maven_config_exits_2_with_one_line(tmp_path: Path, setting, expected):
    conf = tmp_path / "bad.conf"
    lines = setting.replace(", ", "\n")
    conf.write_text(
        'sources = []\nport = 0\n[[repository]]\nname = "central"\n'
        f'prefix = "/maven2/"\nsources = ["http://a"]\n{lines}\n'
    )
    result = run_cli("--config", str(conf))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


# -- pure and off-line ----------------------------------------------------

DATA = b"demo jar bytes"


@pytest.mark.parametrize(
    "text",
    [
        hashlib.sha1(DATA).hexdigest(),
        hashlib.sha1(DATA).hexdigest().upper() + "\n",
        f"{hashlib.sha1(DATA).hexdigest()}  demo-1.0.jar\n",
        f"demo-1.0.jar {hashlib.sha1(DATA).hexdigest()}",
        f"SHA1 (demo-1.0.jar) = {hashlib.sha1(DATA).hexdigest()}\n",
        "demo-1.0.jar: " + " ".join(re.findall("....", hashlib.sha1(DATA).hexdigest())),
    ],
)
def test_a_sidecar_is_read_in_every_spelling_repositories_use(text: str):
    digest = parse_sidecar("sha1", text.encode())
    assert digest == Digest("sha1", hashlib.sha1(DATA).digest(), "sidecar")


@pytest.mark.parametrize(
    "data",
    [b"", b"<html>not found</html>", b"ab" * 19, b"\xff" * 40, b"0" * 40 + b" " * 5000],
)
def test_a_sidecar_that_states_no_digest_is_none(data: bytes):
    assert parse_sidecar("sha1", data) is None


def test_verify_checks_a_stored_artifact_against_its_stored_sidecar(tmp_path: Path):
    repository = RepositorySettings(
        name="central", prefix=PREFIX, kind="maven", sources=("http://a",)
    )
    folder = tmp_path / "maven2/org/demo/demo/1.0"
    folder.mkdir(parents=True)
    (folder / "demo-1.0.jar").write_bytes(DATA)
    (folder / "demo-1.0.jar.sha1").write_text(hashlib.sha1(b"other").hexdigest())
    (folder / "demo-1.0.pom").write_bytes(DATA)
    (folder / "demo-1.0.pom.sha512").write_text(hashlib.sha512(DATA).hexdigest())
    found = list(verify(str(tmp_path), (repository,)))
    wrong = [item for item in found if isinstance(item, Wrong)]
    assert [Path(item.path).name for item in wrong] == ["demo-1.0.jar"]
    assert wrong[0].expected.origin == "sidecar"
    tally = found[-1]
    assert isinstance(tally, Tally) and tally.checked == 2 and tally.wrong == 1


def test_an_artifact_whose_sidecar_cannot_be_fetched_is_not_stored_unchecked(
    artifacts, make_proxy
):
    repo, origin = artifacts
    # A folder where a sidecar would be: the origin answers 403, which
    # says nothing about whether the sidecar exists.
    unknown = repo.release("demo-unknown", "1.0", sidecars=())
    (repo.root / f"{unknown}.sha512").mkdir()
    weaker = repo.release("demo-weaker", "1.0", sidecars=("sha1",))
    (repo.root / f"{weaker}.sha512").mkdir()
    proxy = make_proxy([], repository=[maven_repository(origin)])

    answer = proxy.request(PREFIX + unknown)
    assert answer.status == 502
    assert b"cannot check against its sidecar" in answer.body
    assert origin.requests[f"/{unknown}"] == 0
    assert not proxy.cached(PREFIX + unknown).exists()
    # A weaker sidecar that exists still checks it.
    answer = proxy.request(PREFIX + weaker)
    assert answer.status == 200 and answer.body == (repo.root / weaker).read_bytes()
    assert "verified=sha1" in _access_line(proxy, PREFIX + weaker)
