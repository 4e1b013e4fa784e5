"""paths.py: which request targets name a cache file, and which are refused."""

import sys
import unicodedata
import urllib.parse

import pytest

from pkgcache.store.paths import PathRefused, cache_key

#: Unicode's Bidi_Control characters (all of category Cf).
BIDI_CONTROLS = (
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@pytest.mark.parametrize(
    ("target", "relative", "url_path"),
    [
        ("/distfiles/foo-1.0.tar.gz", "distfiles/foo-1.0.tar.gz", None),
        ("/distfiles/foo.tar.gz?x=1", "distfiles/foo.tar.gz", None),
        ("http://mirror.example/distfiles/a.tar", "distfiles/a.tar", None),
        ("/a//b", "a/b", None),
        ("/gtk%2B-3.tar.xz", "gtk+-3.tar.xz", "/gtk+-3.tar.xz"),
        ("/sp%20ace.tar", "sp ace.tar", "/sp%20ace.tar"),
        ("/caf%C3%A9.tar", "café.tar", "/caf%C3%A9.tar"),
        # Raw UTF-8 bytes, as tornado decodes the request line (latin-1):
        # the same file as the percent-encoded name.
        ("/caf\xc3\xa9.tar", "café.tar", "/caf%C3%A9.tar"),
        # Invisible, but reorder nothing: ZWNJ (Persian names), soft hyphen.
        ("/a%E2%80%8Cb.tar", "a\u200cb.tar", "/a%E2%80%8Cb.tar"),
        ("/a%C2%ADb.tar", "a\u00adb.tar", "/a%C2%ADb.tar"),
        ("/a%C2%A0b.tar", "a\u00a0b.tar", "/a%C2%A0b.tar"),
    ],
)
def test_file_paths_map_to_their_key(target, relative, url_path):
    key = cache_key(target)
    assert key.relative == relative
    assert key.url_path == (url_path or "/" + relative)


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/../etc/passwd", 400),
        ("/a/../../etc/passwd", 400),
        ("/%2e%2e/etc/passwd", 400),
        ("/%2E%2E/etc/passwd", 400),
        ("/a/%2e%2e%2f%2e%2e%2fetc/passwd", 400),
        ("/a%2fb", 400),
        ("/a%5cb", 400),
        ("/a\\..\\b", 400),
        ("/a%00b", 400),
        ("/a%0ab", 400),
        ("/a%7fb", 400),
        ("/a%c2%85b", 400),  # NEL
        ("/a%c2%9b31m", 400),  # CSI
        ("/a%c2%80b", 400),
        ("/a%c2%9fb", 400),
        ("/a%e2%80%a8b", 400),  # LINE SEPARATOR
        ("/a%e2%80%a9b", 400),  # PARAGRAPH SEPARATOR
        ("/a%e2%80%aeb", 400),  # RIGHT-TO-LEFT OVERRIDE
        ("/a%e2%81%a6b", 400),  # LEFT-TO-RIGHT ISOLATE
        ("/a\x85b", 400),  # a raw byte 0x85, as tornado decodes the line
        ("/caf\xe9.tar", 400),  # a raw latin-1 byte: not UTF-8
        ("/\u20ac.tar", 400),  # not a byte at all: tornado never gives this
        ("/%ff%fe", 400),
        ("/./a", 400),
        ("/.partial/dl-x", 404),
        ("/a/.hidden", 404),
        ("/distfiles/", 404),
        ("/", 404),
        ("//", 404),
        ("/" + "a" * 300, 414),
        ("mirror:443", 400),
        ("ftp://host/a", 400),
    ],
)
def test_hostile_or_folder_paths_are_refused(target, status):
    with pytest.raises(PathRefused) as refused:
        cache_key(target)
    assert refused.value.status == status


def test_same_input_same_answer():
    assert cache_key("/a/b.tar") == cache_key("/a/b.tar")
    assert hash(cache_key("/a/b.tar")) == hash(cache_key("/a//b.tar"))


def refused_characters() -> list[str]:
    """Every character of categories Cc, Zl and Zp, and the bidi controls."""
    chosen = {"Cc", "Zl", "Zp"}
    every = (chr(code) for code in range(sys.maxunicode + 1))
    return [c for c in every if unicodedata.category(c) in chosen] + list(BIDI_CONTROLS)


def test_every_control_separator_and_bidi_control_is_refused():
    characters = refused_characters()
    assert len(characters) == 65 + 1 + 1 + 12
    for char in characters:
        quoted = urllib.parse.quote(char, safe="")
        for target in (f"/files/a{quoted}b.tar", f"/files/{quoted}/b.tar"):
            with pytest.raises(PathRefused) as refused:
                cache_key(target)
            assert refused.value.status == 400, (hex(ord(char)), target)
