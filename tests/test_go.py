"""Go modules through package-cache with Debian's go (1.19): a repository
of kind "go" in front of a static GOPROXY folder and a checksum database
folder (``tests/gorepo.py``). Indexes (``@v/list``, ``@latest``, queries)
are volatile, module files immutable, and zips and go.mod files are
checked against the ``h1:`` of their lookup record before they are
stored."""

from __future__ import annotations

import asyncio
import http.client
import io
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import tornado.web
from tornado.routing import PathMatches, Rule

from pkgcache import repositoryconfig
from pkgcache.configvalues import ConfigError
from pkgcache.digests import dirhash
from pkgcache.digests.book import DigestBook
from pkgcache.fetching.download import Download, State
from pkgcache.fetching.finishing import Inspect, Judgement
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.upstream import Route
from pkgcache.registries.fronts import Fronts
from pkgcache.registries.targets import Refusal, Reply, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.serving.clientstream import ClientStream
from pkgcache.settings import RepositorySettings
from pkgcache.store.cache import CacheStore
from pkgcache.store.paths import request_path
from tests.conftest import Proxy, wait_until
from tests.gorepo import GoRepo, Module, go, go_env, missing_go, write_app
from tests.scripted import Gate, MemoryOutput, ScriptedTransport, Turn, ok
from tests.static_origin import StaticOrigin
from tests.test_upstream_inprocess import BODY, KEY, URL_A, A, make_download

GREET = "example.com/pkgcache/greet"
SHOUT = "example.com/pkgcache/Shout"  # upper case: !shout on the wire
BLOB = "example.com/pkgcache/blob"
BAD = "example.com/pkgcache/bad"
FRESH_FOR = 60
MAIN = """package main

import (
\t"fmt"

\tshout "example.com/pkgcache/Shout"
)

func main() { fmt.Println(shout.Loud()) }
"""

needs_go = pytest.mark.skipif(missing_go(), reason="needs go (Debian: golang-go)")


def greet(version: str) -> Module:
    source = f'package greet\n\nfunc Hello() string {{ return "hello {version}" }}\n'
    return Module(GREET, version, {"greet.go": source.encode()})


def shout(version: str, greet_version: str) -> Module:
    source = (
        'package shout\n\nimport (\n\t"strings"\n\n'
        '\t"example.com/pkgcache/greet"\n)\n\n'
        'func Loud() string { return strings.ToUpper(greet.Hello()) + "!" }\n'
    )
    return Module(
        SHOUT, version, {"shout.go": source.encode()}, requires={GREET: greet_version}
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The proxy and checksum database folders, built once."""
    repo = GoRepo(tmp_path_factory.mktemp("gorepo"))
    for version in ("v1.0.0", "v1.1.0"):
        repo.publish(greet(version))
        repo.publish(shout(version, version))
    blob = random.Random(25).randbytes(3 << 20)
    repo.publish(Module(BLOB, "v1.0.0", {"blob.go": b"package blob\n", "data": blob}))
    # The record states the hashes of other bytes than the zip holds.
    other = Module(BAD, "v1.0.0", {"bad.go": b"package bad\n// other\n"})
    bad = Module(BAD, "v1.0.0", {"bad.go": b"package bad\n"})
    repo.publish(bad, record=(other.hashes()[0], bad.hashes()[1]))
    return repo.root


@pytest.fixture
def repo(built: Path, tmp_path: Path) -> GoRepo:
    """A copy of the folders a test may change."""
    shutil.copytree(built, tmp_path / "repo")
    return GoRepo(tmp_path / "repo")


@pytest.fixture
def origin(repo: GoRepo) -> Iterator[StaticOrigin]:
    server = StaticOrigin(repo.root).start()
    yield server
    server.stop()


def go_repository(origin: StaticOrigin, **settings: Any) -> dict[str, Any]:
    return {
        "name": "go",
        "prefix": "/go/",
        "kind": "go",
        "sources": [origin.url + "/proxy"],
        "sumdb": origin.url + "/sumdb",
        "fresh_for": FRESH_FOR,
        **settings,
    }


@pytest.fixture
def proxy(make_proxy: Any, origin: StaticOrigin) -> Proxy:
    return make_proxy(
        [], repository=[go_repository(origin, stale_if_error="1d")], verbose=2
    )


class _Gone(tornado.web.RequestHandler):
    def get(self) -> None:
        self.settings["mirror"].requests[self.request.path] += 1
        self.send_error(410)


class GoneOrigin(StaticOrigin):
    """A static origin where ``example.com/gone`` answers 410, as
    proxy.golang.org does for a module it will not serve."""

    def make_app(self) -> tornado.web.Application:
        app = super().make_app()
        app.wildcard_router.rules.insert(
            0, Rule(PathMatches(r"/proxy/example\.com/gone/.*"), _Gone)
        )
        return app


@pytest.fixture(scope="module")
def shared(
    built: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Proxy, StaticOrigin]]:
    """One origin and proxy for the tests that neither change the folders
    nor move the clock, each on paths of its own."""
    origin = GoneOrigin(built).start()
    folder = tmp_path_factory.mktemp("go-shared")
    proxy = Proxy(folder, [], repository=[go_repository(origin)], verbose=2).start()
    yield proxy, origin
    proxy.stop()
    origin.stop()
    assert "Traceback" not in proxy.log(), proxy.log()


def client(tmp_path: Path, proxy: Proxy, name: str) -> tuple[Path, dict[str, str]]:
    home = tmp_path / name
    app = write_app(home / "app", {SHOUT: "v1.1.0"}, MAIN)
    return app, go_env(home, proxy.url + "/go")


def build_and_run(app: Path, env: dict[str, str]) -> str:
    go(["mod", "download"], app, env)
    go(["build", "-o", "app", "."], app, env)
    return subprocess.run(
        [str(app / "app")], capture_output=True, text=True, check=True
    ).stdout


@needs_go
def test_go_builds_through_the_cache_then_from_it_alone(
    proxy: Proxy, origin: StaticOrigin, tmp_path: Path
) -> None:
    app, env = client(tmp_path, proxy, "first")
    assert build_and_run(app, env) == "HELLO V1.1.0!\n"
    for path in (f"{GREET}/@v/v1.1.0.zip", "example.com/pkgcache/!shout/@v/v1.1.0.zip"):
        assert proxy.cached(f"/go/{path}").is_file()
        assert origin.requests[f"/proxy/{path}"] == 1
    # The records were fetched through the cache, and are hits for clients.
    record = "/go/sumdb/127.0.0.1/lookup/example.com/pkgcache/!shout@v1.1.0"
    assert proxy.cached(record).is_file()
    assert origin.count("/lookup/example.com/pkgcache/!shout@v1.1.0") == 1
    # Our h1: is Go's: the one the record states is what go computed.
    ziphash = Path(
        env["GOMODCACHE"], "cache/download", SHOUT.lower().replace("shout", "!shout")
    )
    stated = proxy.request(record).body.decode().splitlines()[1].split()[2]
    assert (ziphash / "@v/v1.1.0.ziphash").read_text().strip() == stated
    assert max(origin.requests.values()) == 1  # one upstream request per file
    # What the record vouched for is recorded as the zip's SHA-256.
    assert any(
        ".zip" in line and "verified=sha256" in line
        for line in proxy.log().splitlines()
    )
    versions = go(["list", "-m", "-versions", GREET], app, env).stdout
    asked = dict(origin.requests)

    second, second_env = client(tmp_path, proxy, "second")
    assert build_and_run(second, second_env) == "HELLO V1.1.0!\n"
    assert dict(origin.requests) == asked

    # The origin gone, and the indexes stale: a clean client still builds,
    # and the stale @v/list is served when no source answers.
    origin.stop()
    proxy.advance(FRESH_FOR + 1)
    later, later_env = client(tmp_path, proxy, "later")
    assert build_and_run(later, later_env) == "HELLO V1.1.0!\n"
    assert go(["list", "-m", "-versions", GREET], later, later_env).stdout == versions


@needs_go
def test_a_new_version_appears_in_the_list_after_fresh_for(
    proxy: Proxy, repo: GoRepo, tmp_path: Path
) -> None:
    app, env = client(tmp_path, proxy, "client")
    listed = go(["list", "-m", "-versions", GREET], app, env).stdout
    assert listed.split() == [GREET, "v1.0.0", "v1.1.0"]
    repo.publish(greet("v1.2.0"))
    assert go(["list", "-m", "-versions", GREET], app, env).stdout == listed
    proxy.advance(FRESH_FOR + 1)
    listed = go(["list", "-m", "-versions", GREET], app, env).stdout
    assert listed.split() == [GREET, "v1.0.0", "v1.1.0", "v1.2.0"]


@needs_go
def test_a_zip_that_disagrees_with_its_lookup_record_is_never_stored(
    shared: tuple[Proxy, StaticOrigin], tmp_path: Path
) -> None:
    proxy, origin = shared
    app, env = client(tmp_path, proxy, "client")
    failed = go(["mod", "download", f"{BAD}@v1.0.0"], app, env, check=False)
    assert failed.returncode != 0
    zip_path = f"/go/{BAD}/@v/v1.0.0.zip"
    assert not proxy.cached(zip_path).exists()
    assert proxy.cached(f"/go/{BAD}/@v/v1.0.0.mod").is_file()  # its go.mod agrees
    assert "digest mismatch" in proxy.log()
    # Asked again: fetched again, refused again, the client cut off short;
    # nothing left behind.
    with pytest.raises(http.client.IncompleteRead):
        proxy.request(zip_path)
    assert origin.requests[f"/proxy/{BAD}/@v/v1.0.0.zip"] >= 2
    assert not proxy.cached(zip_path).exists()
    assert wait_until(lambda: not proxy.partials())


def test_concurrent_clients_of_one_zip_make_one_upstream_request(
    shared: tuple[Proxy, StaticOrigin], built: Path
) -> None:
    proxy, origin = shared
    path = f"/go/{BLOB}/@v/v1.0.0.zip"
    expected = (GoRepo(built).proxy / BLOB / "@v/v1.0.0.zip").read_bytes()
    bodies: list[bytes] = []
    start = threading.Barrier(20)

    def fetch() -> None:
        start.wait()
        response = proxy.request(path)
        assert response.status == 200
        bodies.append(response.body)

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert bodies == [expected] * 20
    assert origin.requests[f"/proxy/{BLOB}/@v/v1.0.0.zip"] == 1
    assert origin.count(f"/lookup/{BLOB}@v1.0.0") == 1
    assert proxy.cached(path).read_bytes() == expected
    # The SHA-256 its record vouched for lets ``verify`` check it off-line.
    verified = subprocess.run(
        [sys.executable, "-m", "pkgcache", "verify", "--cache", str(proxy.cache)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert " 0 wrong" in verified.stdout + verified.stderr
    cached = proxy.cached(path)
    with open(cached, "r+b") as file:  # corrupted in place: same inode, size
        file.seek(100)
        file.write(b"X")
    verified = subprocess.run(
        [sys.executable, "-m", "pkgcache", "verify", "--cache", str(proxy.cache)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verified.returncode == 1 and "blob/@v/v1.0.0.zip" in verified.stdout


def test_paths_that_are_no_module_are_refused_without_asking(
    shared: tuple[Proxy, StaticOrigin],
) -> None:
    proxy, origin = shared
    before = origin.requests.total()
    for path in (
        "/go/Example.com/x/@v/list",  # upper case unencoded
        "/go/example.com/x/v1/@v/list",  # a /v1 suffix
        "/go/nodot/@v/list",
        f"/go/{GREET}/@v/master.zip",  # a query is no zip
        f"/go/{GREET}/@v/v1.0.0.tar",
        f"/go/{GREET}/anything",
        "/go/sumdb/sum.golang.org/supported",  # not our database
        "/go/sumdb/127.0.0.1/tile/8/0/000.p/256",
    ):
        assert proxy.request(path).status == 404, path
    assert origin.requests.total() == before
    assert proxy.request("/go/sumdb/127.0.0.1/supported").status == 200
    # 404 and 410 are "not found", remembered for negative_for.
    for module in ("example.com/none", "example.com/gone"):
        for _ in range(2):
            assert proxy.request(f"/go/{module}/@v/list").status == 404
        assert origin.requests[f"/proxy/{module}/@v/list"] == 1


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        (f"{GREET}/@v/list", Policy.VOLATILE),
        (f"{GREET}/@latest", Policy.VOLATILE),
        (f"{GREET}/@v/master.info", Policy.VOLATILE),
        (f"{GREET}/@v/v1.info", Policy.VOLATILE),
        (f"{GREET}/@v/v1.0.0.info", Policy.IMMUTABLE),
        (f"{GREET}/@v/v0.0.0-20240102030405-abcdefabcdef.info", Policy.IMMUTABLE),
        (f"{GREET}/@v/v1.0.0.mod", Policy.IMMUTABLE),
        ("example.com/!shout/@v/v2.0.0+incompatible.zip", Policy.IMMUTABLE),
        ("sumdb/sum.example/latest", Policy.VOLATILE),
        ("sumdb/sum.example/lookup/golang.org/x/text@v0.3.0", Policy.VOLATILE),
        ("sumdb/sum.example/tile/8/0/x001/234", Policy.IMMUTABLE),
        ("sumdb/sum.example/tile/8/data/001", Policy.IMMUTABLE),
        ("sumdb/sum.example/tile/8/1/000.p/12", Policy.VOLATILE),
    ],
)
def test_each_goproxy_path_has_its_policy(
    tmp_path: Path, path: str, policy: Policy
) -> None:
    resolved = resolve(tmp_path, path)
    assert isinstance(resolved, Target) and resolved.policy is policy


@pytest.mark.parametrize(
    "path",
    [
        "example.com/!/@v/list",  # ! before no letter
        "example.com/a!B/@v/list",
        "example.com/a!/@v/list",
        "example.com/x./@v/list",
        "example.com/con/@v/list",
        "example.com/a/v0/@v/list",
        f"{GREET}/@v/v1.0.0+meta.zip",
        f"{GREET}/@v/V1.0.0.mod",
        "sumdb/sum.example/lookup/golang.org/x/text@master",
        "sumdb/sum.example/tile/31/0/000",
        "sumdb/other.example/latest",
    ],
)
def test_invalid_paths_are_refused(tmp_path: Path, path: str) -> None:
    resolved = resolve(tmp_path, path)
    assert isinstance(resolved, Refusal) and resolved.status == 404


def test_supported_is_answered_for_the_configured_database(tmp_path: Path) -> None:
    assert resolve(tmp_path, "sumdb/sum.example/supported") == Reply(200)


def resolve(tmp_path: Path, below: str) -> object:
    settings = RepositorySettings(
        "go", "/go/", ("http://m",), kind="go", sumdb="https://sum.example/x"
    )
    fronts = Fronts(CacheStore(str(tmp_path)), DigestBook())
    return fronts.resolve(Repository.of(settings), request_path("/go/" + below), {})


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"kind": "go", "sumdb": "not a url"}, "sumdb"),
        ({"kind": "go", "sumdb": 3}, "sumdb must be a URL"),
        ({"kind": "generic", "sumdb": "https://sum.golang.org"}, "for kind go only"),
        ({"kind": "go", "file_sources": ["http://f"]}, "file_sources"),
        ({"kind": "go", "rules": []}, "fixed rules"),
    ],
)
def test_bad_go_repositories_are_refused(table: dict[str, Any], expected: str) -> None:
    base = {"name": "go", "prefix": "/go/", "sources": ["http://127.0.0.1:9"]}
    with pytest.raises(ConfigError, match=expected):
        repositoryconfig.repository(0, {**base, **table})


def test_a_bad_sumdb_is_one_line_and_exit_2(tmp_path: Path) -> None:
    conf = tmp_path / "go.conf"
    conf.write_text(
        f'cache = "{tmp_path / "cache"}"\nhost = "127.0.0.1"\nport = 0\n'
        'repository = [{ name = "go", prefix = "/go/", kind = "go", '
        'sources = ["http://127.0.0.1:9"], sumdb = "ftp://sum" }]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "pkgcache", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=8,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sumdb" in lines[0], result.stderr


def test_zip_h1_is_bounded_and_refuses_what_is_no_zip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = Module(GREET, "v1.0.0", {"a.go": b"package a\n" * 100})
    data = module.zip_bytes()
    assert dirhash.zip_h1(io.BytesIO(data)) == module.hashes()[0]
    assert dirhash.mod_h1(module.go_mod) == module.hashes()[1]
    with pytest.raises(dirhash.NotAModuleZip):
        dirhash.zip_h1(io.BytesIO(b"PK not a zip at all"))
    with pytest.raises(dirhash.NotAModuleZip):
        dirhash.zip_h1(io.BytesIO(data[:-30]))  # its directory cut off
    monkeypatch.setattr(dirhash, "MAX_UNCOMPRESSED", 999)
    with pytest.raises(dirhash.NotAModuleZip, match="more than 999"):
        dirhash.zip_h1(io.BytesIO(data))


@pytest.mark.parametrize("verdict", [None, "refused"])
def test_an_inspect_step_sees_the_whole_body_and_a_refusal_cuts_its_reader(
    tmp_path: Path, verdict: str | None
) -> None:
    """The generic step the h1: check runs in, over a scripted upstream:
    the judge reads the partial file and the held last batch as one file;
    a refusal leaves the reader short and stores nothing."""
    seen: list[bytes] = []

    async def judge(body: BinaryIO) -> Judgement:
        body.seek(0, 2)
        size = body.tell()
        body.seek(0)
        seen.append(body.read(size + 10))
        return verdict

    plan = FetchPlan(route=Route((A,), KEY.url_path), finishing=(Inspect(judge),))

    async def run() -> tuple[bytes, bool, Download, CacheStore]:
        attached = asyncio.Event()
        answer = [*ok(BODY)[:2], Turn(), Gate(attached), *ok(BODY)[2:]]
        transport = ScriptedTransport({URL_A: [answer]})
        download, store = make_download(tmp_path, transport, plan)
        download.start()
        assert await download.wait_for_head(5)
        output = MemoryOutput()
        reader = ClientStream(output, download, 1 << 20)  # type: ignore[arg-type]
        attached.set()
        complete = await reader.run()
        await download.wait_for_end(5)
        return bytes(output.body), complete, download, store

    body, complete, download, store = asyncio.run(run())
    assert seen == [BODY]
    if verdict is None:
        assert complete and body == BODY and download.state is State.PUBLISHED
    else:
        assert not complete and len(body) < len(BODY)
        assert download.state is State.FAILED and store.lookup(KEY) is None
