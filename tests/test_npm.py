"""Real npm installs through package-cache from a test npm registry: a
repository of kind "npm" whose package documents are volatile (each served
with every dist.tarball pointing at the cache) and whose tarballs are
immutable, fetched from wherever the registry's document said."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Proxy, wait_until
from tests.npmregistry import (
    ABBREVIATED,
    NpmClient,
    NpmRegistry,
    Tarball,
    missing_tools,
    pack,
)

pytestmark = pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"needs npm and node (Debian: npm); missing: {', '.join(missing_tools())}",
)

# Names no public registry has: a mix-up with a real package would show.
A = "pkgcache-demo-a"
B = "pkgcache-demo-b"  # its tarballs live on the registry's cdn origin
UTIL = "@pkgcache-demo/util"
TREE = {A: "^1.0.0"}  # A depends on B and UTIL; B and UTIL on nothing
# What npm install itself sends for the abbreviated document.
NPM_ACCEPT = f"{ABBREVIATED}; q=1.0, application/json; q=0.8, */*"


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tarball]:
    packed = pack(
        [
            (A, "1.0.0", {B: "^1.0.0", UTIL: "^1.0.0"}),
            (B, "1.0.0", {}),
            (UTIL, "1.0.0", {}),
            (B, "1.1.0", {}),
        ],
        tmp_path_factory.mktemp("npm-packs"),
    )
    return dict(zip((A, B, UTIL, f"{B}@1.1.0"), packed, strict=True))


@pytest.fixture
def registry(tmp_path: Path, tarballs: dict[str, Tarball]) -> Iterator[NpmRegistry]:
    server = NpmRegistry(tmp_path / "registry").start()
    server.publish(tarballs[A])
    server.publish(tarballs[B], on_cdn=True)
    server.publish(tarballs[UTIL])
    yield server
    server.stop()


#: The documents' fresh_for, in seconds: long, so no real delay makes one
#: stale; tests move the proxy's clock past it.
FRESH_FOR = 60


def npm_repository(registry: NpmRegistry, **settings: Any) -> dict[str, Any]:
    return {
        "name": "npm",
        "prefix": "/npm/",
        "kind": "npm",
        "sources": [registry.url],
        "file_sources": [registry.cdn.url],
        "fresh_for": FRESH_FOR,
        **settings,
    }


def client(
    tmp_path: Path, name: str, proxy: Proxy, dependencies: dict[str, str] = TREE
) -> NpmClient:
    """A scratch npm (its own home, cache and project) on the cache."""
    return NpmClient(tmp_path / f"client-{name}", f"{proxy.url}/npm/", dependencies)


def tarball_path(tarball: Tarball) -> str:
    """Where the cache serves (and stores) a tarball."""
    return f"/npm{tarball.registry_path}"


_ACCESS = re.compile(r'"(\S+) (\S+)" (\d+) \d+ (\S+)')


def access(proxy: Proxy) -> list[tuple[str, str, int, str]]:
    """(method, target, status, X-Package-Cache result) of each access line."""
    found = []
    for line in proxy.log().splitlines():
        match = _ACCESS.search(line) if "pkgcache.access" in line else None
        if match:
            method, target, status, result = match.groups()
            found.append((method, target, int(status), result))
    return found


def results(proxy: Proxy, target: str, answered: int) -> list[str]:
    """The result word of each GET of ``target``, once ``answered`` of them
    are logged (an access line is written just after its response ends)."""

    def found() -> list[str]:
        return [r for m, t, _, r in access(proxy) if (m, t) == ("GET", target)]

    wait_until(lambda: len(found()) >= answered, timeout=5)
    return found()


def document_requests(registry: NpmRegistry) -> int:
    """GETs of package documents (everything but tarballs) at the registry."""
    return sum(1 for r in registry.log if "/-/" not in r.path)


def assert_tree_installed(npm: NpmClient, b: str) -> None:
    assert npm.installed(A) == "1.0.0"
    assert npm.installed(B) == b
    assert npm.installed(UTIL) == "1.0.0"
    entry = npm.project / "node_modules" / UTIL / "index.js"
    assert entry.read_text() == f'module.exports = "{UTIL}@1.0.0";\n'


def test_npm_install_through_the_cache_then_a_clean_client_gets_only_hits(
    registry, tarballs, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[npm_repository(registry)])
    a, b, util = tarballs[A], tarballs[B], tarballs[UTIL]

    first = client(tmp_path, "first", proxy)
    first.install()
    assert_tree_installed(first, "1.0.0")
    # package-lock.json records the cache's URLs, never an origin's.
    assert first.resolved() == {
        f"node_modules/{A}": proxy.url + tarball_path(a),
        f"node_modules/{B}": proxy.url + tarball_path(b),
        f"node_modules/{UTIL}": proxy.url + tarball_path(util),
    }
    lock = (first.project / "package-lock.json").read_text()
    assert f":{registry.port}" not in lock
    assert f":{registry.cdn.port}" not in lock
    # B's tarball came from the cdn URL B's document gave, not the registry.
    assert registry.cdn.count(f"/{b.filename}") == 1
    assert registry.count(f"/{b.filename}") == 0
    assert registry.count(a.registry_path) == 1
    assert registry.count(util.registry_path) == 1
    # The cdn is a configured file_sources host: never called a foreign one.
    assert f"links to 127.0.0.1:{registry.cdn.port}" not in proxy.log()
    for tarball in (a, b, util):
        stored = proxy.cached(tarball_path(tarball))
        assert stored.read_bytes() == tarball.path.read_bytes(), stored
    documents = document_requests(registry)

    second = client(tmp_path, "second", proxy)
    second.install()
    assert_tree_installed(second, "1.0.0")
    assert second.resolved() == first.resolved()
    # Everything the clean client fetched came from the cache.
    assert registry.cdn.count(f"/{b.filename}") == 1
    assert registry.count(a.registry_path) == 1
    assert registry.count(util.registry_path) == 1
    assert document_requests(registry) == documents
    for tarball in (a, b, util):
        assert results(proxy, tarball_path(tarball), 2) == ["miss", "hit"], proxy.log()


def test_npm_sees_a_new_version_after_fresh_for_and_installs_with_origins_gone(
    registry, tarballs, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[npm_repository(registry)])
    new = tarballs[f"{B}@1.1.0"]

    client(tmp_path, "first", proxy).install()
    registry.publish(new)

    proxy.advance(FRESH_FOR + 1)
    later = client(tmp_path, "later", proxy, {})
    later.install(f"{B}@latest")
    assert later.installed(B) == "1.1.0"
    assert later.resolved() == {f"node_modules/{B}": proxy.url + tarball_path(new)}
    assert registry.cdn.count(f"/{new.filename}") == 1
    assert "refreshed" in results(proxy, f"/npm/{B}", 2), proxy.log()

    registry.stop()  # the registry and its cdn: connections refused
    proxy.advance(FRESH_FOR + 1)
    offline = client(tmp_path, "offline", proxy)
    offline.install()
    # B ^1.0.0 is now 1.1.0, whose tarball the cache has too.
    assert_tree_installed(offline, "1.1.0")
    assert results(proxy, f"/npm/{A}", 2)[-1] == "stale", proxy.log()
    assert results(proxy, tarball_path(new), 2) == ["miss", "hit"], proxy.log()


def write(proxy: Proxy, method: str, path: str) -> tuple[int, str, bytes, bool]:
    """Status, Content-Type and body of a write on a keep-alive connection,
    and whether the connection stayed usable as the answer implied: npm's
    agent sends its next request on the same socket unless told
    ``Connection: close``."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        body = json.dumps({"name": "x", "password": "x"}).encode()
        conn.request(method, path, body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = (response.status, response.headers["Content-Type"], response.read())
        if response.headers.get("Connection", "").lower() == "close":
            return (*answer, True)
        try:
            conn.request("GET", f"/npm/{A}")
            return (*answer, conn.getresponse().status == 200)
        except (ConnectionError, http.client.HTTPException):
            return (*answer, False)
    finally:
        conn.close()


def test_npm_audit_search_publish_and_login_are_answered_without_storing(
    registry, tarballs, make_proxy, tmp_path: Path
):
    proxy = make_proxy([], repository=[npm_repository(registry)])

    for method, path in [
        ("POST", "/npm/-/npm/v1/security/advisories/bulk"),  # npm audit
        ("PUT", f"/npm/{A}"),  # npm publish
        ("PUT", "/npm/-/user/org.couchdb.user:x"),  # npm login
        ("DELETE", f"/npm/{A}/-rev/1"),  # npm unpublish
    ]:
        status, content_type, body, usable = write(proxy, method, path)
        assert status == 405, (method, path, body)
        # Else npm's next request on that socket fails with ECONNRESET.
        assert usable, f"{method} {path}: closed without Connection: close"
        assert content_type.startswith("text/plain"), content_type
        assert body.strip() and b"\n" not in body.rstrip(b"\n"), body

    npm = client(tmp_path, "audit", proxy)
    npm.install(audit=True)
    assert_tree_installed(npm, "1.0.0")

    def audits() -> list[tuple[str, int]]:
        return [(m, s) for m, t, s, _ in access(proxy) if "/-/npm/v1/security/" in t]

    assert wait_until(audits, timeout=5), proxy.log()
    assert all(audit == ("POST", 405) for audit in audits()), proxy.log()

    assert sorted(npm.search("pkgcache-demo")) == sorted([A, B, UTIL])
    assert npm.search("demo-b") == [B]
    # Passed through each time, and nothing of it kept.
    assert registry.count("/-/v1/search") == 2
    stored = [p.relative_to(proxy.cache).as_posix() for p in proxy.cache.rglob("*")]
    assert not [p for p in stored if "search" in p or p.startswith("npm/-")], stored
    assert proxy.request("/npm/-/v1/search?text=x").status == 200
    assert registry.count("/-/v1/search") == 3

    # Nothing but GETs ever reached the registry.
    assert {r.method for r in registry.log} == {"GET"}


def without_tarballs(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each dist.tarball blanked, to compare the rest."""
    copy = json.loads(json.dumps(document))
    for version in copy.get("versions", {}).values():
        version["dist"]["tarball"] = None
    if "dist" in copy:
        copy["dist"]["tarball"] = None
    return copy


def origin_document(registry: NpmRegistry, path: str, accept: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept})
        return conn.getresponse().read()
    finally:
        conn.close()


def test_npm_documents_full_and_abbreviated_point_every_tarball_at_public_url(
    registry, tarballs, make_proxy
):
    public = "http://npm-cache.test:4873"
    proxy = make_proxy([], repository=[npm_repository(registry, public_url=public)])

    for name, quoted in [(A, A), (B, B), (UTIL, "@pkgcache-demo%2futil")]:
        tarball = tarballs[name]
        expected = f"{public}/npm/{name}/-/{tarball.filename}"
        variants = {}
        for accept, content_type in [
            ("application/json", "application/json"),
            (NPM_ACCEPT, ABBREVIATED),
        ]:
            response = proxy.request(f"/npm/{quoted}", headers={"Accept": accept})
            assert response.status == 200, response.body
            assert response.headers["Content-Type"].startswith(content_type)
            assert "accept" in response.headers.get("Vary", "").lower()
            served = json.loads(response.body)
            assert served["versions"]["1.0.0"]["dist"]["tarball"] == expected
            upstream = json.loads(origin_document(registry, f"/{quoted}", accept))
            # Only dist.tarball changed: integrity, shasum, dependencies kept.
            assert without_tarballs(served) == without_tarballs(upstream)
            variants[content_type] = response.body
        assert variants["application/json"] != variants[ABBREVIATED]
        assert "readme" in json.loads(variants["application/json"])
        assert "readme" not in json.loads(variants[ABBREVIATED])

    # The scoped name in both spellings: the same document.
    for accept in ("application/json", NPM_ACCEPT):
        encoded = proxy.request(
            "/npm/@pkgcache-demo%2futil", headers={"Accept": accept}
        )
        slashed = proxy.request("/npm/@pkgcache-demo/util", headers={"Accept": accept})
        assert slashed.status == 200, slashed.body
        assert slashed.body == encoded.body

    # A version, a tag and the dist-tags.
    b = tarballs[B]
    for path in (f"/npm/{B}/1.0.0", f"/npm/{B}/latest"):
        response = proxy.request(path)
        assert response.status == 200, (path, response.body)
        version = json.loads(response.body)
        assert version["version"] == "1.0.0"
        assert version["dist"]["tarball"] == f"{public}/npm/{B}/-/{b.filename}"
        assert version["dist"]["integrity"] == b.integrity
        assert version["dist"]["shasum"] == b.shasum
    scoped = json.loads(proxy.request("/npm/@pkgcache-demo/util/1.0.0").body)
    assert scoped["dist"]["tarball"] == (
        f"{public}/npm/{UTIL}/-/{tarballs[UTIL].filename}"
    )
    tags = proxy.request(f"/npm/-/package/{B}/dist-tags")
    assert tags.status == 200, tags.body
    assert json.loads(tags.body) == {"latest": "1.0.0"}

    # Nothing served names an origin.
    origins = (f":{registry.port}", f":{registry.cdn.port}")
    for path in (f"/npm/{A}", f"/npm/{B}", "/npm/@pkgcache-demo%2futil"):
        for accept in ("application/json", NPM_ACCEPT):
            body = proxy.request(path, headers={"Accept": accept}).body.decode()
            assert not [port for port in origins if port in body], body


def test_npm_tarball_urls_follow_the_host_header_without_public_url(
    registry, tarballs, make_proxy
):
    proxy = make_proxy([], repository=[npm_repository(registry)])
    b = tarballs[B]

    for accept in ("application/json", NPM_ACCEPT):
        for host in ("cache-one.test:4000", "cache-two.test"):
            response = proxy.request(
                f"/npm/{B}", headers={"Accept": accept, "Host": host}
            )
            assert response.status == 200, response.body
            served = json.loads(response.body)
            tarball = served["versions"]["1.0.0"]["dist"]["tarball"]
            assert tarball == f"http://{host}/npm/{B}/-/{b.filename}"
    # One stored copy of each variant served both names.
    assert registry.count(f"/{B}") == 2
    assert results(proxy, f"/npm/{B}", 4) == ["miss", "hit", "miss", "hit"], proxy.log()


def test_a_tarball_asked_first_after_a_restart_comes_from_where_its_document_said(
    registry, tarballs, make_proxy, tmp_path: Path
):
    """B's tarballs live on the cdn at a path of the cdn's own. A client
    whose npm kept the document asks the restarted cache for the tarball
    straight away: the cache finds the cdn URL in the document it stored,
    not at the registry's usual path (which has nothing)."""
    b = tarballs[B]
    proxy = make_proxy([], repository=[npm_repository(registry)])
    document = proxy.request(f"/npm/{B}", headers={"Accept": NPM_ACCEPT})
    assert document.status == 200
    proxy.stop()
    proxy.start()
    got = proxy.request(tarball_path(b))
    assert got.status == 200
    assert got.body == b.path.read_bytes()
    assert got.headers["X-Package-Cache"] == "miss"
    assert registry.cdn.count(b.filename) == 1
    assert registry.count(f"/{B}/-/{b.filename}") == 0
    assert proxy.cached(tarball_path(b)).read_bytes() == b.path.read_bytes()


def test_forwarded_host_is_believed_only_from_trusted_proxies(
    registry, tarballs, make_proxy
):
    """Behind a trusted reverse proxy the tarball URLs name the front end
    (X-Forwarded-Host and -Proto); from anyone else those headers are
    ignored, and a Host that is not a plain host name is refused rather
    than written into a document."""
    b = tarballs[B]
    forwarded = {
        "Host": "backend.test:4000",
        "X-Forwarded-Host": "cache.example.test",
        "X-Forwarded-Proto": "https",
    }
    untrusted = make_proxy([], repository=[npm_repository(registry)])
    served = json.loads(untrusted.request(f"/npm/{B}", headers=forwarded).body)
    tarball = served["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == f"http://backend.test:4000/npm/{B}/-/{b.filename}"
    hostile = untrusted.request(f"/npm/{B}", headers={"Host": 'x"y'})
    assert hostile.status == 400
    untrusted.stop()

    trusted = make_proxy(
        [], repository=[npm_repository(registry)], trusted_proxies=["127.0.0.1/32"]
    )
    served = json.loads(trusted.request(f"/npm/{B}", headers=forwarded).body)
    tarball = served["versions"]["1.0.0"]["dist"]["tarball"]
    assert tarball == f"https://cache.example.test/npm/{B}/-/{b.filename}"
