"""pip and uv through package-cache's ``kind = "pypi"`` repository, from a
test index (tests/pypirepo.py) whose pages are on one port and whose files
are on another: installs and downloads, second clients served from the
cache, new releases after fresh_for, origins gone, and the rewritten pages
checked on the bytes."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import tornado.web

from tests.conftest import wait_until
from tests.loopback import LoopbackServer
from tests.pypirepo import (
    FOREIGN_URL,
    JSON,
    TEXT_HTML,
    V1_HTML,
    Dist,
    IndexOrigin,
    PypiRepo,
    escaped,
    pip,
    serve,
    uv_pip,
)
from tests.static_origin import StaticOrigin

SIMPLE = "/pypi/simple/"
#: What installing alpha brings: the tree of ``PypiRepo.tree``.
TREE = ("alpha", "beta", "Gamma_Pkg", "delta")


@pytest.fixture
def repo(tmp_path: Path) -> PypiRepo:
    return PypiRepo.tree(tmp_path / "pypi")


@pytest.fixture
def origins(repo: PypiRepo) -> Iterator[tuple[IndexOrigin, StaticOrigin]]:
    with serve(repo) as both:
        yield both


#: The pages' fresh_for, in seconds: long, so no real delay makes one
#: stale; tests move the proxy's clock past it.
FRESH_FOR = 600


def pypi(index: IndexOrigin, files: StaticOrigin) -> dict:
    return {
        "name": "pypi",
        "prefix": "/pypi/",
        "kind": "pypi",
        "sources": [index.url],
        "file_sources": [files.url],
        "fresh_for": FRESH_FOR,
    }


def wheels(repo: PypiRepo, version: str = "1.0") -> list:
    """The wheel of each project of the tree, at ``version`` for alpha."""
    return [
        next(
            d
            for d in repo.dists(name)
            if d.is_wheel and d.version == (version if name == "alpha" else "1.0")
        )
        for name in TREE
    ]


def assert_installed(target: Path, versions: dict[str, str]) -> None:
    for name, version in versions.items():
        module = target / escaped(name) / "__init__.py"
        assert module.read_text() == f'VERSION = "{version}"\n', name
        assert (target / f"{escaped(name)}-{version}.dist-info" / "METADATA").is_file()


def tree_versions(alpha: str = "1.0") -> dict[str, str]:
    return {name: (alpha if name == "alpha" else "1.0") for name in TREE}


def upstream(origin_port: int, path: str, accept: str) -> tuple[str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", origin_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept})
        response = conn.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def cache_path(dist: Dist) -> str:
    """Where the cache serves ``dist``: its path on the files host, under
    the prefix (however the page linked it)."""
    return "/pypi/" + dist.path


def resolved(url: str, page: str) -> str:
    """``url`` as a client resolves it on the page at ``page``."""
    return urljoin(page, url)


def media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip()


#: Each href value in a page, for comparing pages but for their links.
HREF = re.compile(rb'href="[^"]*"')


class Anchors(HTMLParser):
    def __init__(self, page: bytes) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.feed(page.decode())

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


# The real clients ------------------------------------------------------


def test_pip_install_then_clean_pip_download_and_uv_are_served_from_the_cache(
    repo, origins, make_proxy, tmp_path: Path
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    url = proxy.url + SIMPLE

    pip(
        tmp_path / "a", "install", "--target", str(tmp_path / "a/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "a/t", tree_versions())
    for dist in wheels(repo):
        # Each file and its .metadata went through the cache once, and
        # were fetched from the files origin, not from the index host.
        assert files.count("/" + dist.path) == 1, dist.filename
        assert files.count("/" + dist.path + ".metadata") == 1, dist.filename
        assert proxy.cached(cache_path(dist)).read_bytes() == (
            repo.file(dist).read_bytes()
        )
        assert proxy.cached(cache_path(dist) + ".metadata").read_bytes() == (
            repo.metadata_file(dist).read_bytes()
        )
    assert index.count(".whl") == 0 and index.count(".metadata") == 0
    asked_files, asked_index = dict(files.requests), dict(index.requests)

    pip(tmp_path / "b", "download", "-d", str(tmp_path / "b/d"), "-i", url, "alpha")
    downloaded = {p.name: p.read_bytes() for p in (tmp_path / "b/d").iterdir()}
    assert downloaded == {d.filename: repo.file(d).read_bytes() for d in wheels(repo)}

    uv_pip(
        tmp_path / "c", "install", "--target", str(tmp_path / "c/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "c/t", tree_versions())

    # Both later clients got every page and file from the cache.
    assert dict(files.requests) == asked_files
    assert dict(index.requests) == asked_index
    for dist in wheels(repo):
        hit = proxy.request(cache_path(dist))
        assert hit.headers["X-Package-Cache"] == "hit"
        assert hashlib.sha256(hit.body).hexdigest() == dist.sha256


def test_uv_install_through_the_cache_then_a_clean_uv_gets_only_hits(
    repo, origins, make_proxy, tmp_path: Path
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    url = proxy.url + SIMPLE

    uv_pip(
        tmp_path / "a", "install", "--target", str(tmp_path / "a/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "a/t", tree_versions())
    for dist in wheels(repo):
        assert files.count("/" + dist.path) == 1, dist.filename
        assert proxy.cached(cache_path(dist)).read_bytes() == (
            repo.file(dist).read_bytes()
        )
    asked = dict(files.requests)

    uv_pip(
        tmp_path / "b", "install", "--target", str(tmp_path / "b/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "b/t", tree_versions())
    assert dict(files.requests) == asked


def test_a_new_release_appears_after_fresh_for_and_the_cache_serves_without_origins(
    repo, origins, make_proxy, tmp_path: Path
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    url = proxy.url + SIMPLE
    pip(
        tmp_path / "a", "install", "--target", str(tmp_path / "a/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "a/t", tree_versions())

    new = repo.add_wheel("alpha", "1.1", requires=["beta>=1.0", "Gamma_Pkg"])
    page = proxy.request(SIMPLE + "alpha/", headers={"Accept": JSON})
    assert page.headers["X-Package-Cache"] == "hit"  # still fresh: the old page
    assert new.filename not in page.body.decode()
    proxy.advance(FRESH_FOR + 1)

    pip(
        tmp_path / "b", "install", "--target", str(tmp_path / "b/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "b/t", tree_versions("1.1"))
    assert files.count("/" + new.path) == 1

    index.stop()
    files.stop()
    proxy.advance(FRESH_FOR + 1)  # every page is stale: the cache must try upstream
    pip(
        tmp_path / "c", "install", "--target", str(tmp_path / "c/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "c/t", tree_versions("1.1"))
    uv_pip(
        tmp_path / "d", "install", "--target", str(tmp_path / "d/t"), "-i", url, "alpha"
    )
    assert_installed(tmp_path / "d/t", tree_versions("1.1"))
    stale = proxy.request(SIMPLE + "alpha/", headers={"Accept": JSON})
    assert stale.status == 200
    assert stale.headers["X-Package-Cache"] == "stale"
    assert new.filename in stale.body.decode()


def test_pip_installs_through_the_cache_from_an_index_that_only_serves_html(
    repo, make_proxy, tmp_path: Path
):
    """pip asks for JSON first; an index that ignores Accept answers HTML,
    and the cache must hand that on as HTML, links rewritten."""
    with serve(repo, html_only=True) as (index, files):
        proxy = make_proxy([], repository=[pypi(index, files)])
        url = proxy.url + SIMPLE
        target = tmp_path / "a/t"
        pip(tmp_path / "a", "install", "--target", str(target), "-i", url, "alpha")
        assert_installed(target, tree_versions())
        for dist in wheels(repo):
            assert files.count("/" + dist.path) == 1, dist.filename
        page = proxy.request(SIMPLE + "alpha/", headers={"Accept": TEXT_HTML})
        assert media(page.headers["Content-Type"]) == TEXT_HTML
        assert f"127.0.0.1:{files.port}" not in page.body.decode()


# The pages on the bytes ------------------------------------------------


def test_the_json_page_keeps_everything_but_the_hosts_of_its_links(
    repo, origins, make_proxy
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    for project in ("alpha", "beta", "delta"):
        page = f"{SIMPLE}{project}/"
        served = proxy.request(page, headers={"Accept": JSON})
        assert served.status == 200
        assert media(served.headers["Content-Type"]) == JSON
        assert "accept" in served.headers["Vary"].lower()
        text = served.body.decode()
        assert f"127.0.0.1:{files.port}" not in text
        assert f"127.0.0.1:{index.port}" not in text

        # Every key as upstream gave it (meta.api-version, hashes,
        # requires-python, core-metadata, yanked, size...) but the urls.
        _, raw = upstream(index.port, f"/simple/{project}/", JSON)
        expected, document = json.loads(raw), json.loads(served.body)
        urls = [entry.pop("url") for entry in document["files"]]
        for entry in expected["files"]:
            del entry["url"]
        assert document == expected
        for url, entry in zip(urls, document["files"], strict=True):
            if entry["filename"] == "alpha-0.1-py3-none-any.whl":
                assert url == FOREIGN_URL  # another host: left alone
            else:
                dist = repo.dist(entry["filename"])
                assert resolved(url, page) == cache_path(dist), url

    alpha = json.loads(proxy.request(SIMPLE + "alpha/", headers={"Accept": JSON}).body)
    assert alpha["meta"]["api-version"] == "1.1"
    by_name = {entry["filename"]: entry for entry in alpha["files"]}
    wheel = by_name["alpha-1.0-py3-none-any.whl"]
    dist = repo.dist("alpha-1.0-py3-none-any.whl")
    assert wheel["url"] == cache_path(dist)  # absolute upstream: a host-free path
    assert wheel["hashes"] == {"sha256": dist.sha256}
    assert wheel["requires-python"] == ">=3.8,<4"
    assert wheel["core-metadata"] == {"sha256": dist.metadata_sha256}
    assert wheel["yanked"] is False
    assert by_name["alpha-0.9-py3-none-any.whl"]["yanked"] == "broken build"
    # The link to a host nobody configured was logged, once for both formats.
    assert proxy.request(SIMPLE + "alpha/", headers={"Accept": V1_HTML}).status == 200
    foreign_host = urlsplit(FOREIGN_URL).netloc
    said = [line for line in proxy.log().splitlines() if foreign_host in line]
    assert len(said) == 1, said


@pytest.mark.parametrize("accept", [V1_HTML, TEXT_HTML])
def test_the_html_page_keeps_everything_but_the_hosts_of_its_links(
    repo, origins, make_proxy, accept: str
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    for project in ("alpha", "beta", "delta"):
        page = f"{SIMPLE}{project}/"
        served = proxy.request(page, headers={"Accept": accept})
        assert served.status == 200
        assert media(served.headers["Content-Type"]) == accept
        assert "accept" in served.headers["Vary"].lower()
        text = served.body.decode()
        assert f"127.0.0.1:{files.port}" not in text
        assert f"127.0.0.1:{index.port}" not in text

        # The page is upstream's byte for byte, but for the href values.
        _, raw = upstream(index.port, f"/simple/{project}/", accept)
        assert HREF.sub(b"href", served.body) == HREF.sub(b"href", raw)
        for got, want in zip(
            Anchors(served.body).anchors, Anchors(raw).anchors, strict=True
        ):
            href, fragment = str(got.pop("href")).split("#")
            wanted, wanted_fragment = str(want.pop("href")).split("#")
            assert got == want
            assert fragment == wanted_fragment
            if wanted == FOREIGN_URL:
                assert href == FOREIGN_URL  # another host: left alone
            else:
                dist = repo.dist(wanted.rsplit("/", 1)[1])
                assert resolved(href, page) == cache_path(dist), href

    page = proxy.request(SIMPLE + "alpha/", headers={"Accept": accept}).body.decode()
    wheel = repo.dist("alpha-1.0-py3-none-any.whl")
    assert f'href="{cache_path(wheel)}#sha256={wheel.sha256}"' in page
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page
    assert 'data-yanked="broken build"' in page
    assert f'data-core-metadata="sha256={wheel.metadata_sha256}"' in page
    assert f'data-dist-info-metadata="sha256={wheel.metadata_sha256}"' in page
    assert f'href="{FOREIGN_URL}#sha256=' in page


# Names, variants, files ------------------------------------------------


def test_project_names_are_normalized_and_slashes_added_by_redirects(
    origins, make_proxy
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    for asked, location in (
        ("/pypi/simple/Gamma_Pkg/", "/pypi/simple/gamma-pkg/"),
        ("/pypi/simple/GAMMA.pkg/", "/pypi/simple/gamma-pkg/"),
        ("/pypi/simple/Alpha_Pkg/", "/pypi/simple/alpha-pkg/"),
        ("/pypi/simple/delta", "/pypi/simple/delta/"),
    ):
        answer = proxy.request(asked, headers={"Accept": JSON})
        assert answer.status == 301, asked
        assert urlsplit(answer.headers["Location"]).path == location, asked
    # Both at once: one redirect or two, it ends at the normalized name.
    path = "/pypi/simple/Gamma__Pkg"
    for _ in range(3):
        answer = proxy.request(path, headers={"Accept": JSON})
        if answer.status != 301:
            break
        path = urlsplit(answer.headers["Location"]).path
    assert (answer.status, path) == (200, "/pypi/simple/gamma-pkg/")
    assert (
        proxy.request("/pypi/simple/gamma-pkg/", headers={"Accept": JSON}).status == 200
    )
    # The names were sorted out in the cache: upstream saw one spelling.
    assert [p for p in index.requests if "amma" in p.lower()] == ["/simple/gamma-pkg/"]
    assert index.requests["/simple/gamma-pkg/"] == 1
    assert index.count("/simple/delta") == 0


def test_json_and_html_are_stored_as_two_variants_each_fetched_once(
    origins, make_proxy
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    path = SIMPLE + "alpha/"
    for accept in (JSON, V1_HTML, TEXT_HTML, JSON, V1_HTML, TEXT_HTML):
        served = proxy.request(path, headers={"Accept": accept})
        assert served.status == 200
        assert media(served.headers["Content-Type"]) == accept
        assert served.body.startswith(b"{" if accept == JSON else b"<!DOCTYPE")
    pip_accept = f"{JSON}, {V1_HTML}; q=0.1, {TEXT_HTML}; q=0.01"
    assert (
        media(
            proxy.request(path, headers={"Accept": pip_accept}).headers["Content-Type"]
        )
        == JSON
    )
    assert index.requests["/simple/alpha/"] == 2
    stored_json = proxy.cached("/pypi/simple/alpha/index.json").read_bytes()
    assert json.loads(stored_json)["name"] == "alpha"
    assert (
        b"Links for alpha" in proxy.cached("/pypi/simple/alpha/index.html").read_bytes()
    )

    refused = proxy.request(path, headers={"Accept": "application/xml"})
    assert refused.status == 406


def test_metadata_and_sdist_files_are_served_through_the_cache_and_stored(
    repo, origins, make_proxy
):
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    wheel = repo.dist("alpha-1.0-py3-none-any.whl")
    sdist = repo.dist("alpha-1.0.tar.gz")
    metadata = cache_path(wheel) + ".metadata"
    first = proxy.request(metadata)
    assert first.status == 200
    assert first.body == repo.metadata_file(wheel).read_bytes()
    assert hashlib.sha256(first.body).hexdigest() == wheel.metadata_sha256
    assert b"Requires-Dist: Gamma_Pkg" in first.body
    assert proxy.request(metadata).headers["X-Package-Cache"] == "hit"
    assert proxy.cached(metadata).read_bytes() == first.body
    assert files.count(wheel.path + ".metadata") == 1

    got = proxy.request(cache_path(sdist))
    assert got.status == 200
    assert hashlib.sha256(got.body).hexdigest() == sdist.sha256
    assert proxy.cached(cache_path(sdist)).read_bytes() == got.body

    # The root listing is passed on (both formats).
    listing = json.loads(proxy.request(SIMPLE, headers={"Accept": JSON}).body)
    assert {p["name"] for p in listing["projects"]} == set(TREE)
    html_listing = proxy.request(SIMPLE, headers={"Accept": TEXT_HTML})
    assert html_listing.status == 200 and b">Gamma_Pkg</a>" in html_listing.body


class _BrokenPage(tornado.web.RequestHandler):
    def get(self, _project: str) -> None:
        self.settings["hits"].append(self.request.path)
        self.set_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.finish(b'{"meta": {"api-version": "1.1"}, "files": [{"url": ')


class BrokenIndex(LoopbackServer):
    """An index whose JSON pages are cut off mid-way."""

    what = "broken index"

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application(
            [(r"/simple/([^/]+)/", _BrokenPage)], hits=self.hits
        )


def test_a_page_that_is_not_what_its_type_says_is_a_502_and_not_stored(make_proxy):
    index = BrokenIndex().start()
    try:
        proxy = make_proxy(
            [],
            repository=[
                {
                    "name": "pypi",
                    "prefix": "/pypi/",
                    "kind": "pypi",
                    "sources": [index.url],
                    "negative_for": 0,
                }
            ],
        )
        accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
        for _ in range(2):
            got = proxy.request("/pypi/simple/alpha/", headers=accept)
            assert got.status == 502
            assert got.body.startswith(b"502 ")
        assert index.hits == ["/simple/alpha/"] * 2  # nothing kept in between
        assert not proxy.cached("/pypi/simple/alpha/index.json").exists()
        assert "cannot rewrite /pypi/simple/alpha/index.json" in proxy.log()
        assert proxy.partials() == []
    finally:
        index.stop()


def test_after_a_restart_a_stored_page_still_vouches_for_its_files(
    repo, origins, make_proxy
):
    """The digests a page names are learnt again when the stored page is
    answered after a restart, so the next file is still checked."""
    index, files = origins
    proxy = make_proxy([], repository=[pypi(index, files)])
    accept = {"Accept": JSON}
    assert proxy.request(SIMPLE + "alpha/", headers=accept).status == 200
    proxy.stop()
    # The first run learnt (and logged) the page's digests as well: only
    # what the restarted process logs tells that it learnt them again.
    restarted = len(proxy.log())
    proxy.start()
    page = proxy.request(SIMPLE + "alpha/", headers=accept)
    assert page.headers["X-Package-Cache"] == "hit"
    # Learnt in a thread, not waited for by the answer: wait for it here.
    learnt = "the stored alpha names the digests"
    assert wait_until(lambda: learnt in proxy.log()[restarted:], timeout=60)
    wheel = next(d for d in wheels(repo) if d.filename.startswith("alpha-1.0"))
    got = proxy.request(cache_path(wheel))
    assert got.status == 200 and got.headers["X-Package-Cache"] == "miss"
    line = f'{cache_path(wheel)}" 200 {len(got.body)} miss verified=sha256'
    logged = wait_until(lambda: line in proxy.log()[restarted:], timeout=60)
    assert logged, proxy.log()[restarted:]
