"""npm package documents: every ``dist.tarball`` made a URL of the cache,
for each answer.

The stored document is the upstream's bytes as they came, so it names no
client's host; each answer completes the tarball URLs with the URL this
client reaches the cache at (``finish``). JSON as a registry writes it
is found by one pattern: a ``"tarball"`` key can only appear as a key
(inside a string, its quotes would be escaped), and its value is a plain
JSON string. Values that are not URLs of a configured host are left as
they were (``Bases``).
"""

from __future__ import annotations

import json
import posixpath
import re
import urllib.parse
from collections import OrderedDict

from pkgcache.registries.links import Bases
from pkgcache.store.paths import CacheKey

_TARBALL = re.compile(rb'"tarball"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
#: Tarball URLs remembered, so a tarball is fetched where its document
#: said; forgotten oldest first past this.
TARBALLS_REMEMBERED = 200_000


class TarballOrigins:
    """Where each tarball's document said it lives: cache key -> the
    upstream URL. Filled whenever a document is answered or read."""

    def __init__(self) -> None:
        self._urls: OrderedDict[CacheKey, str] = OrderedDict()

    def get(self, key: CacheKey) -> str | None:
        return self._urls.get(key)

    def add(self, key: CacheKey, url: str) -> None:
        self._urls[key] = url
        self._urls.move_to_end(key)
        while len(self._urls) > TARBALLS_REMEMBERED:
            self._urls.popitem(last=False)


def tarball_key(prefix: tuple[str, ...], name: str, url: str) -> CacheKey | None:
    """The cache key of package ``name``'s tarball at ``url``:
    ``<prefix>/<name>/-/<file name>``; None for a URL without a usable
    file name."""
    file = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path))
    if not file or file.startswith(".") or "/" in file or "\\" in file:
        return None
    return CacheKey((*prefix, *name.split("/"), "-", file))


def finish(
    document: bytes,
    name: str,
    prefix: tuple[str, ...],
    public_base: str,
    bases: Bases,
    origins: TarballOrigins,
) -> bytes:
    """``document`` with each tarball URL of a configured host made
    ``<public_base>/<prefix>/<name>/-/<file>``, remembering the upstream
    URLs in ``origins``."""

    def replace(match: re.Match[bytes]) -> bytes:
        try:
            url = json.loads(b'"' + match.group(2) + b'"')
        except ValueError:
            return match.group(0)
        if not isinstance(url, str) or bases.cache_path(url) is None:
            return match.group(0)
        key = tarball_key(prefix, name, url)
        if key is None:
            return match.group(0)
        origins.add(key, url)
        local = public_base + key.url_path
        return b'"tarball"' + match.group(1) + json.dumps(local).encode()

    return _TARBALL.sub(replace, document)
