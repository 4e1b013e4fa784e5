"""The registries' pure parts on real bytes: Accept negotiation, PyPI page
rewriting (HTML and JSON), npm tarball URLs, request paths with folders
and npm's scoped names, and the config of the registry kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pkgcache.config import ConfigError, build, load_file
from pkgcache.registries.links import Bases
from pkgcache.registries.negotiation import choose
from pkgcache.registries.npmdocuments import Template, check_document
from pkgcache.registries.npmstored import find_tarball
from pkgcache.registries.pypi import normalize
from pkgcache.registries.pypipages import rewrite_html, rewrite_json
from pkgcache.store.paths import CacheKey, PathRefused, cache_key, request_path

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
OFFERED = ("text/html", HTML, JSON)
BASES = Bases(("http://files.test:8080", "https://index.test/base"), "/pypi/")
PAGE_URL = "https://index.test/base/simple/six/"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (f"{JSON}, {HTML}; q=0.1, text/html; q=0.01", JSON),  # pip
        (f"{JSON}, {HTML};q=0.2, text/html;q=0.01", JSON),  # uv
        ("text/html", "text/html"),
        ("*/*", "text/html"),
        ("application/*", HTML),
        (f"text/html;q=0.5, {HTML}", HTML),
        ("application/xml", None),
        (f"{JSON};q=0, text/*;q=0.1", "text/html"),
        (f"{JSON};q=bogus", None),
    ],
)
def test_accept_negotiation(accept: str, chosen: str | None) -> None:
    assert choose(accept, OFFERED) == chosen


def test_pep503_normalization() -> None:
    assert normalize("Foo.Bar") == "foo-bar"
    assert normalize("zope__interface") == "zope-interface"
    assert normalize("A-_.-b") == "a-b"


def test_html_links_rewritten_and_everything_else_kept() -> None:
    page = (
        "<!DOCTYPE html>\n<html><head><title>Links for six</title></head><body>\n"
        '<a href="http://files.test:8080/packages/ab/six-1.0-py3-none-any.whl'
        '#sha256=0123" data-requires-python="&gt;=3.8" '
        'data-dist-info-metadata="sha256=4567" data-core-metadata="sha256=4567">'
        "six-1.0-py3-none-any.whl</a><br/>\n"
        "  <a data-yanked='broken' href='../../packages/six-0.9.tar.gz#md5=89'>"
        "six-0.9.tar.gz</a>\n"
        "<A HREF=http://elsewhere.test/six-0.8.whl>six-0.8.whl</A>\n"
        '<a href="http://files.test:8080/x.whl?token=1">signed</a>\n'
        '<a href="http://files.test:8080/a%2Bb&amp;c.whl">escaped</a>\n'
        "caf\xe9 \xff</body></html>\n"
    ).encode("latin-1")
    out = rewrite_html(page, PAGE_URL, BASES)
    assert (
        b'<a href="/pypi/packages/ab/six-1.0-py3-none-any.whl#sha256=0123" '
        b'data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=4567" '
        b'data-core-metadata="sha256=4567">six-1.0-py3-none-any.whl</a><br/>\n'
    ) in out
    # Relative: resolved against the page, below the index's base path.
    assert (
        b"  <a data-yanked='broken' href=\"/pypi/packages/six-0.9.tar.gz#md5=89\">"
    ) in out
    # Other hosts and links with a query: untouched, byte for byte.
    assert b"<A HREF=http://elsewhere.test/six-0.8.whl>six-0.8.whl</A>" in out
    assert b'<a href="http://files.test:8080/x.whl?token=1">' in out
    assert b'<a href="/pypi/a%2Bb&amp;c.whl">escaped</a>' in out
    assert b"files.test:8080/packages" not in out
    assert b"index.test" not in out
    # Bytes that are not UTF-8 and the rest of the page come back as they were.
    assert out.endswith("caf\xe9 \xff</body></html>\n".encode("latin-1"))
    assert out.startswith(b"<!DOCTYPE html>\n<html><head><title>Links for six")


def test_html_base_element_is_honoured() -> None:
    page = (
        b'<html><head><base href="https://index.test/base/other/"></head>'
        b'<body><a href="../packages/x.whl">x</a></body></html>'
    )
    assert b'href="/pypi/packages/x.whl"' in rewrite_html(page, PAGE_URL, BASES)


def test_json_urls_rewritten_and_everything_else_kept() -> None:
    upstream = {
        "meta": {"api-version": "1.1", "_last-serial": 7},
        "name": "six",
        "versions": ["1.0"],
        "files": [
            {
                "filename": "six-1.0-py3-none-any.whl",
                "url": "http://files.test:8080/packages/six-1.0-py3-none-any.whl",
                "hashes": {"sha256": "0123"},
                "requires-python": ">=3.8",
                "core-metadata": {"sha256": "4567"},
                "dist-info-metadata": {"sha256": "4567"},
                "yanked": "broken",
                "size": 10,
                "upload-time": "2026-01-01T00:00:00.000000Z",
            },
            {"filename": "x.whl", "url": "http://elsewhere.test/x.whl", "hashes": {}},
            {"filename": "y.whl", "url": "../../y.whl", "hashes": {}},
        ],
    }
    out = json.loads(rewrite_json(json.dumps(upstream).encode(), PAGE_URL, BASES))
    expected = json.loads(json.dumps(upstream))
    expected["files"][0]["url"] = "/pypi/packages/six-1.0-py3-none-any.whl"
    expected["files"][2]["url"] = "/pypi/y.whl"
    assert out == expected


def test_malformed_pages_are_refused() -> None:
    with pytest.raises(ValueError):
        rewrite_json(b"<html>", PAGE_URL, BASES)
    with pytest.raises(ValueError):
        rewrite_json(b'{"files": 3}', PAGE_URL, BASES)


def test_npm_tarballs_point_at_the_cache_for_each_client() -> None:
    document = json.dumps(
        {
            "name": "@scope/pkg",
            "readme": 'say "tarball":"http://registry.test/evil.tgz"',
            "versions": {
                "1.0.0": {
                    "dist": {
                        "tarball": "http://registry.test/@scope/pkg/-/pkg-1.0.0.tgz",
                        "integrity": "sha512-abc==",
                        "shasum": "0a1b",
                    }
                },
                "2.0.0": {"dist": {"tarball": "http://cdn.test/t/9f/pkg-2.0.0.tgz"}},
                "3.0.0": {"dist": {"tarball": "http://elsewhere.test/pkg-3.0.0.tgz"}},
            },
        }
    ).encode()
    bases = Bases(("http://registry.test", "http://cdn.test"), "/npm/")
    template = Template.cut(document, "@scope/pkg", ("npm",), bases)
    out = template.join("http://cache.lan:4000")
    versions = json.loads(out)["versions"]
    assert versions["1.0.0"]["dist"] == {
        "tarball": "http://cache.lan:4000/npm/@scope/pkg/-/pkg-1.0.0.tgz",
        "integrity": "sha512-abc==",
        "shasum": "0a1b",
    }
    assert (
        versions["2.0.0"]["dist"]["tarball"]
        == "http://cache.lan:4000/npm/@scope/pkg/-/pkg-2.0.0.tgz"
    )
    assert versions["3.0.0"]["dist"]["tarball"] == "http://elsewhere.test/pkg-3.0.0.tgz"
    assert json.loads(out)["readme"] == 'say "tarball":"http://registry.test/evil.tgz"'
    key = CacheKey(("npm", "@scope", "pkg", "-", "pkg-2.0.0.tgz"))
    entries = {key: (url, digests) for key, url, digests in template.entries()}
    assert entries[key] == ("http://cdn.test/t/9f/pkg-2.0.0.tgz", ())
    first = entries[CacheKey(("npm", "@scope", "pkg", "-", "pkg-1.0.0.tgz"))]
    assert first[0] == "http://registry.test/@scope/pkg/-/pkg-1.0.0.tgz"


def test_request_paths_keep_folders_and_split_scoped_names() -> None:
    assert request_path("/pypi/simple/six/") == request_path("/pypi/simple/six//")
    assert request_path("/pypi/simple/six/").folder
    assert not request_path("/pypi/simple/six").folder
    assert request_path("/npm/@types%2fnode").segments == ("npm", "@types", "node")
    assert request_path("/npm/@types%2Fnode/-/node-1.tgz").segments[-2:] == (
        "-",
        "node-1.tgz",
    )
    with pytest.raises(PathRefused):
        request_path("/npm/types%2fnode")  # an encoded / elsewhere: refused
    with pytest.raises(PathRefused):
        request_path("/npm/@x%2f..%2fy")
    with pytest.raises(PathRefused):
        cache_key("/pypi/simple/six/")  # plain files: still no folders


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "generic"\nfile_sources = ["http://f"]', "file_sources is for"),
        ('kind = "pypi"\nfile_sources = "http://f"', "file_sources must be"),
        ('kind = "pypi"\nfile_sources = ["ftp://f"]', "file_sources[0]"),
        ('kind = "pypi"\npublic_url = "http://c"', "public_url is for kind npm"),
        ('kind = "npm"\npublic_url = "http://c/?x"', "public_url"),
        (
            'kind = "npm"\nrules = [{ match = "**", policy = "pass" }]',
            "has fixed rules",
        ),
    ],
)
def test_registry_config_errors(tmp_path: Path, table: str, message: str) -> None:
    text = (
        f'[[repository]]\nname = "r"\nprefix = "/r/"\nsources = ["http://s"]\n{table}\n'
    )
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        build(load_file(str(_config(tmp_path, text))))


@pytest.mark.parametrize(
    ("url", "taken"),
    [
        ("https://index.test/base/packages/x.whl", "packages/x.whl"),
        ("https://index.test/base/a/./b/../x.whl", "a/x.whl"),
        ("https://index.test/base/../secret/x.whl", None),
        ("https://index.test/base/%2e%2e/secret/x.whl", None),
        ("https://index.test/base/%2E./secret/x.whl", None),
        ("https://index.test/base/..%2fsecret/x.whl", None),
        ("https://index.test/base/..\\secret/x.whl", None),
        ("https://index.test/base/@scope%2fname/-/x.tgz", "@scope%2fname/-/x.tgz"),
    ],
)
def test_links_are_judged_with_their_dot_segments_resolved(
    url: str, taken: str | None
) -> None:
    assert BASES.cache_path(url) == taken


def test_a_document_is_checked_to_be_a_json_object() -> None:
    assert check_document(b'{"name": "x"}') == b'{"name": "x"}'
    for bad in (b"<html>down</html>", b"[1, 2]", b'{"a": ' + b"[" * 5000, b"\xff"):
        with pytest.raises(ValueError):
            check_document(bad)
    with pytest.raises(ValueError):
        check_document(b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}")


def test_a_tarball_is_found_in_a_document_without_parsing_it() -> None:
    bases = Bases(("http://registry.test", "http://cdn.test"), "/npm/")
    document = json.dumps(
        {
            "name": "pkg",
            "versions": {
                "1.0.0": {
                    "dist": {
                        "shasum": "0a" * 20,
                        "tarball": "http://cdn.test/t/9f/pkg-1.0.0.tgz",
                    }
                },
                "2.0.0": {"dist": {"tarball": "http://else.test/pkg-2.0.0.tgz"}},
            },
        }
    ).encode()
    key = CacheKey(("npm", "pkg", "-", "pkg-1.0.0.tgz"))
    found = find_tarball(document, key, "pkg", ("npm",), bases)
    assert found is not None
    assert found[0] == "http://cdn.test/t/9f/pkg-1.0.0.tgz"
    assert [digest.algorithm for digest in found[1]] == ["sha1"]
    other = CacheKey(("npm", "pkg", "-", "pkg-2.0.0.tgz"))
    assert find_tarball(document, other, "pkg", ("npm",), bases) is None
    missing = CacheKey(("npm", "pkg", "-", "pkg-3.0.0.tgz"))
    assert find_tarball(document, missing, "pkg", ("npm",), bases) is None
