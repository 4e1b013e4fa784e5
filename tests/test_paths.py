"""paths.py: which request targets name a cache file, and which are refused."""

import pytest

from pkgcache.store.paths import PathRefused, cache_key


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
