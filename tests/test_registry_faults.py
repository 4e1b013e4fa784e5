"""Registry documents and pages from a hostile or broken upstream, through
a real proxy: pages that cost memory to rewrite, documents too big to
parse per request, JSON nested past the parser's depth, a maintenance
page instead of a document, and tarball URLs that climb out of their
source with dot segments."""

from __future__ import annotations

import hashlib
import json
import posixpath
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.web

from tests.conftest import Proxy
from tests.loopback import LoopbackServer

MIB = 1024 * 1024


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


class _Scripted(tornado.web.RequestHandler):
    def initialize(self, origin: ScriptedOrigin) -> None:
        self.origin = origin

    def get(self, _path: str) -> None:
        # As a server that decodes and resolves dot segments reads it.
        raw = urllib.parse.unquote(self.request.path)
        path = posixpath.normpath(raw) + ("/" if raw.endswith("/") else "")
        self.origin.requests.append(path)
        answer = self.origin.answers.get(path)
        if answer is None:
            self.set_status(404)
            self.finish(b"not here\n")
            return
        self.set_status(answer.status)
        self.set_header("Content-Type", answer.content_type)
        self.finish(answer.body)


class ScriptedOrigin(LoopbackServer):
    """Answers each path with what ``answers`` holds for it now (404 for
    anything else) and records every path asked for, as a server that
    decodes it and resolves its dot segments sees it."""

    what = "scripted origin"

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, Answer] = {}
        self.requests: list[str] = []

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application([(r"(/.*)", _Scripted, {"origin": self})])


@pytest.fixture
def upstream() -> Iterator[ScriptedOrigin]:
    server = ScriptedOrigin().start()
    yield server
    server.stop()


def npm(source: str, **settings: Any) -> dict[str, Any]:
    return {"name": "npm", "prefix": "/npm/", "kind": "npm", "sources": [source]} | (
        settings
    )


def pypi(source: str, **settings: Any) -> dict[str, Any]:
    return {"name": "pypi", "prefix": "/pypi/", "kind": "pypi", "sources": [source]} | (
        settings
    )


def tarball(data: bytes) -> dict[str, str]:
    return {"shasum": hashlib.sha1(data).hexdigest()}


def document(name: str, versions: dict[str, str], data: bytes) -> bytes:
    """A package document whose versions' tarballs are at the given URLs."""
    return json.dumps(
        {
            "name": name,
            "versions": {
                version: {"dist": {"tarball": url, **tarball(data)}}
                for version, url in versions.items()
            },
        }
    ).encode()


def nested(depth: int) -> bytes:
    return b'{"name": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"


def test_a_page_of_newlines_is_rewritten_in_memory_near_its_size(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A 16 MiB PyPI page of newlines around two links: the proxy's peak
    RSS grows by less than 8 times the page while it is rewritten (it was
    +697 MiB when each line's start was kept in a list), and the links
    are rewritten."""
    link = b'<a href="%s/files/x-%d.whl">x</a>'
    upstream.answers["/simple/small/"] = Answer(
        200, link % (upstream.url.encode(), 0), "text/html"
    )
    page = (
        link % (upstream.url.encode(), 1)
        + b"\n" * (16 * MIB)
        + link % (upstream.url.encode(), 2)
    )
    upstream.answers["/simple/big/"] = Answer(200, page, "text/html")
    proxy = make_proxy([], repository=[pypi(upstream.url)])
    assert proxy.request("/pypi/simple/small/").status == 200
    before = proxy.rss_peak_kib()
    got = proxy.request("/pypi/simple/big/")
    growth = proxy.rss_peak_kib() - before
    assert got.status == 200, got.body[:200]
    assert b'href="/pypi/files/x-1.whl"' in got.body
    assert b'href="/pypi/files/x-2.whl"' in got.body
    assert len(got.body) > 16 * MIB
    assert growth < 8 * 16 * 1024, f"peak RSS grew by {growth} KiB"


@pytest.mark.serial
def test_health_answers_while_tarballs_missing_from_a_big_stored_document_are_asked(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A stored document of about 20 MB, and after a restart six requests
    at once for tarballs it does not list: the document is never parsed
    on the IOLoop (it is cut once, in a thread), so the health page
    answers within 100 ms each time, from the first request until the
    document's tarballs are learnt."""
    data = b"tarball"
    versions = {
        f"1.0.{n}": f"{upstream.url}/big/-/big-1.0.{n}.tgz" for n in range(40_000)
    }
    body = json.loads(document("big", versions, data))
    for manifest in body["versions"].values():
        manifest["description"] = "d" * 400
    upstream.answers["/big"] = Answer(200, json.dumps(body).encode())
    assert len(upstream.answers["/big"].body) > 20 * 1000 * 1000
    proxy = make_proxy([], repository=[npm(upstream.url, negative_for=0)])
    assert proxy.request("/npm/big").status == 200
    proxy.stop()
    proxy.start()
    warm_up = [f"/npm/other/-/other-{n}.tgz" for n in range(6)]
    assert _together(proxy, warm_up) == [404] * 6

    latencies: list[float] = []
    learnt = "the stored document of big told where"
    before = proxy.log().count(learnt)

    def health() -> None:
        while proxy.log().count(learnt) == before or len(latencies) < 10:
            started = time.monotonic()
            assert proxy.request("/.pkgcache/health").status == 200
            latencies.append(time.monotonic() - started)

    watcher = threading.Thread(target=health)
    watcher.start()
    asked = [f"/npm/big/-/big-9.9.{n}.tgz" for n in range(6)]
    assert _together(proxy, asked) == [404] * 6
    watcher.join(60)
    assert max(latencies) < 0.1, f"health took {max(latencies):.3f} s at worst"


def _together(proxy: Proxy, paths: list[str]) -> list[int]:
    """GET each of ``paths`` at once; their statuses."""
    statuses: list[int] = []

    def ask(path: str) -> None:
        statuses.append(proxy.request(path).status)

    askers = [threading.Thread(target=ask, args=(path,)) for path in paths]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(60)
    return statuses


def test_a_document_nested_past_the_parsers_depth_is_a_clean_502(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """JSON nested 5000 deep: a 502 (not a 500), nothing stored, and no
    traceback in the log (``make_proxy`` checks it at the end)."""
    upstream.answers["/deep"] = Answer(200, nested(5000))
    proxy = make_proxy([], repository=[npm(upstream.url)])
    for _ in range(2):
        got = proxy.request("/npm/deep")
        assert got.status == 502, got.body
    assert not proxy.cached("/npm/deep/.document.json").exists()


def test_a_pypi_json_page_nested_past_the_parsers_depth_is_a_clean_502(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A PEP 691 page nested 5000 deep: a 502 for pip, nothing stored, no
    traceback in the log."""
    json_type = "application/vnd.pypi.simple.v1+json"
    upstream.answers["/simple/deep/"] = Answer(200, nested(5000), json_type)
    proxy = make_proxy([], repository=[pypi(upstream.url)])
    got = proxy.request("/pypi/simple/deep/", headers={"Accept": json_type})
    assert got.status == 502, got.body
    assert not proxy.cached("/pypi/simple/deep/index.json").exists()
    assert "internal error" not in proxy.log()


def test_a_tarball_stored_before_its_document_turned_hostile_is_served_after_a_restart(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A verified tarball is a hit whatever its stored document holds
    now: a document nested past the parser's depth (put in the cache as
    another process or an older version could have) does not drop the
    connection after a restart, and a tarball the document does not list
    is still fetched from the usual path."""
    data = b"the tarball's bytes"
    url = f"{upstream.url}/pkg/-/pkg-1.0.0.tgz"
    upstream.answers["/pkg"] = Answer(200, document("pkg", {"1.0.0": url}, data))
    upstream.answers["/pkg/-/pkg-1.0.0.tgz"] = Answer(200, data, "application/gzip")
    upstream.answers["/pkg/-/pkg-2.0.0.tgz"] = Answer(200, data, "application/gzip")
    proxy = make_proxy([], repository=[npm(upstream.url)])
    assert proxy.request("/npm/pkg").status == 200
    first = proxy.request("/npm/pkg/-/pkg-1.0.0.tgz")
    assert first.status == 200
    assert first.body == data
    proxy.stop()
    stored = proxy.cached("/npm/pkg/.document.json")
    assert stored.exists()
    stored.write_bytes(nested(5000))
    proxy.start()
    for _ in range(2):
        got = proxy.request("/npm/pkg/-/pkg-1.0.0.tgz")
        assert got.status == 200
        assert got.body == data
        assert got.headers["X-Package-Cache"] == "hit"
    other = proxy.request("/npm/pkg/-/pkg-2.0.0.tgz")
    assert other.status == 200
    assert other.body == data


def test_a_maintenance_page_is_never_stored_as_a_document(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A registry answers 200 with an HTML maintenance page: with nothing
    stored the client gets 502 and nothing is stored; with a stored
    document (within stale_if_error) the old one is served, and stays on
    disk unchanged."""
    page = b"<html><h1>Down for maintenance</h1></html>"
    maintenance = Answer(200, page, "text/html")
    upstream.answers["/cold"] = maintenance
    proxy = make_proxy(
        [], repository=[npm(upstream.url, fresh_for=1, stale_if_error=3600)]
    )
    got = proxy.request("/npm/cold")
    assert got.status == 502
    assert b"maintenance" not in got.body
    assert not proxy.cached("/npm/cold/.document.json").exists()

    good = document("warm", {"1.0.0": f"{upstream.url}/warm/-/warm-1.0.0.tgz"}, b"x")
    upstream.answers["/warm"] = Answer(200, good)
    assert proxy.request("/npm/warm").status == 200
    stored = proxy.cached("/npm/warm/.document.json")
    assert stored.read_bytes() == good
    upstream.answers["/warm"] = maintenance
    proxy.advance(10)
    for _ in range(2):
        got = proxy.request("/npm/warm")
        assert got.status == 200
        assert json.loads(got.body)["name"] == "warm"
        assert got.headers["X-Package-Cache"] == "stale"
    assert stored.read_bytes() == good


@pytest.mark.parametrize(
    "escape",
    ["../secret", "%2e%2e/secret", "%2E%2e/secret", "./../secret", "x/../../secret"],
)
def test_a_tarball_url_climbing_out_of_its_source_is_not_fetched(
    upstream: ScriptedOrigin, make_proxy: Any, escape: str
) -> None:
    """The source is ``ORIGIN/registry``; a document names its tarball
    at ``ORIGIN/registry/<escape>/pkg-1.0.0.tgz``. The origin never sees
    a request outside ``/registry/``, and the client gets the tarball
    from the usual path."""
    data = b"the real tarball"
    source = upstream.url + "/registry"
    url = f"{source}/{escape}/pkg-1.0.0.tgz"
    upstream.answers["/registry/pkg"] = Answer(
        200, document("pkg", {"1.0.0": url}, data)
    )
    upstream.answers["/registry/pkg/-/pkg-1.0.0.tgz"] = Answer(200, data)
    upstream.answers["/secret/pkg-1.0.0.tgz"] = Answer(200, b"a secret")
    proxy = make_proxy([], repository=[npm(source)])
    served = proxy.request("/npm/pkg")
    assert served.status == 200
    listed = json.loads(served.body)["versions"]["1.0.0"]["dist"]["tarball"]
    assert not listed.startswith(proxy.url), listed
    got = proxy.request("/npm/pkg/-/pkg-1.0.0.tgz")
    assert got.status == 200
    assert got.body == data
    outside = [path for path in upstream.requests if not path.startswith("/registry/")]
    assert outside == []


def test_a_pypi_link_climbing_out_of_its_base_is_left_as_it_is(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """A PyPI page linking to ``FILES/../other/x.whl`` (the index is
    ``ORIGIN/index``, the file source ``ORIGIN/files``): the link is not
    made a cache path, so the cache never asks the origin outside its
    bases through it."""
    files = upstream.url + "/files"
    page = (
        f'<a href="{files}/../other/x-1.whl">x-1</a>'
        f'<a href="{files}/%2e%2e/other/x-2.whl">x-2</a>'
        f'<a href="{files}/ok/x-3.whl">x-3</a>'
    )
    upstream.answers["/index/simple/x/"] = Answer(200, page.encode(), "text/html")
    index = upstream.url + "/index"
    proxy = make_proxy([], repository=[pypi(index, file_sources=[files])])
    got = proxy.request("/pypi/simple/x/")
    assert got.status == 200
    assert b'href="/pypi/ok/x-3.whl"' in got.body
    assert b"/pypi/../other" not in got.body
    assert b'href="/pypi/other' not in got.body
    assert got.body.count(b'href="/pypi/') == 1


def test_each_foreign_host_is_logged_once_per_daemon(
    upstream: ScriptedOrigin, make_proxy: Any
) -> None:
    """Links to a host that is not configured are left as they are and
    logged once, however many pages name it."""
    page = b'<a href="http://elsewhere.test/x-%d.whl">x</a>'
    upstream.answers["/simple/a/"] = Answer(200, page % 1, "text/html")
    upstream.answers["/simple/b/"] = Answer(200, page % 2, "text/html")
    proxy: Proxy = make_proxy([], repository=[pypi(upstream.url)])
    for project in ("a", "b"):
        assert proxy.request(f"/pypi/simple/{project}/").status == 200
    assert proxy.log().count("links to elsewhere.test are left") == 1
