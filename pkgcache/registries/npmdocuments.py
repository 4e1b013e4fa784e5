"""npm package documents: every ``dist.tarball`` made a URL of the cache,
for each answer.

The stored document is the upstream's bytes as they came, so it names no
client's host; each answer completes the tarball URLs with the URL this
client reaches the cache at (``Template.join``). JSON as a registry writes it
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

from pkgcache.digests.values import Digest, from_hex, from_sri
from pkgcache.registries.links import Bases
from pkgcache.store.paths import CacheKey

_TARBALL = re.compile(rb'"tarball"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
#: Tarball URLs remembered, so a tarball is fetched where its document
#: said; forgotten oldest first past this.
TARBALLS_REMEMBERED = 200_000
#: Bytes of document templates kept (``Templates``).
TEMPLATES_BUDGET = 128 * 1024 * 1024


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


class Template:
    """A stored document cut around its tarball URLs: joined with a
    client's base URL (JSON-escaped), it is the document that client gets.
    Cutting costs a pass over the document; joining is a copy."""

    def __init__(
        self,
        document: bytes,
        name: str,
        prefix: tuple[str, ...],
        bases: Bases,
    ) -> None:
        self.pieces: list[bytes] = []
        #: The upstream URL of each tarball the document names.
        self.origins: list[tuple[CacheKey, str]] = []
        at = 0
        for match in _TARBALL.finditer(document):
            value = match.group(2)
            try:
                url = (
                    value.decode()
                    if b"\\" not in value
                    else json.loads(b'"' + value + b'"')
                )
            except ValueError:
                continue
            if not isinstance(url, str) or bases.cache_path(url) is None:
                continue
            key = tarball_key(prefix, name, url)
            if key is None:
                continue
            self.origins.append((key, url))
            self.pieces.append(document[at : match.start(2)])
            self.pieces.append(json.dumps(key.url_path)[1:-1].encode())
            at = match.end(2)
        self.pieces.append(document[at:])
        self.size = len(document)
        #: What each tarball must hash to (``dist.integrity``, ``shasum``).
        self.digests = dist_digests(document, name, prefix, bases)

    def join(self, base: str) -> bytes:
        """The document with each tarball URL at ``base``."""
        escaped = json.dumps(base)[1:-1].encode()
        if len(self.pieces) == 1:
            return self.pieces[0]
        head, *rest = self.pieces
        # pieces alternate: text, path, text, path, ..., text
        out = [head]
        for index, piece in enumerate(rest):
            if index % 2 == 0:
                out.append(escaped)
            out.append(piece)
        return b"".join(out)


def dist_digests(
    document: bytes, name: str, prefix: tuple[str, ...], bases: Bases
) -> list[tuple[CacheKey, tuple[Digest, ...]]]:
    """Each tarball's digests, from the document's versions (or a version
    document's own ``dist``); nothing when it is not JSON."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    if not isinstance(parsed, dict):
        return []
    versions = parsed.get("versions")
    manifests = list(versions.values()) if isinstance(versions, dict) else [parsed]
    found = []
    for manifest in manifests:
        dist = manifest.get("dist") if isinstance(manifest, dict) else None
        if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
            continue
        if bases.cache_path(dist["tarball"]) is None:
            continue
        key = tarball_key(prefix, name, dist["tarball"])
        digests: list[Digest] = []
        if isinstance(dist.get("integrity"), str):
            digests += from_sri(dist["integrity"])
        if isinstance(dist.get("shasum"), str):
            sha1 = from_hex("sha1", dist["shasum"])
            if sha1 is not None:
                digests.append(sha1)
        if key is not None and digests:
            found.append((key, tuple(digests)))
    return found


class Templates:
    """Templates of the documents answered lately, by stored file; their
    bytes bounded, the oldest forgotten first."""

    def __init__(self, budget: int = TEMPLATES_BUDGET) -> None:
        self.budget = budget
        self._entries: OrderedDict[object, Template] = OrderedDict()
        self._size = 0

    def get(self, identity: object) -> Template | None:
        found = self._entries.get(identity)
        if found is not None:
            self._entries.move_to_end(identity)
        return found

    def add(self, identity: object, template: Template) -> None:
        if template.size > self.budget:
            return
        old = self._entries.pop(identity, None)
        if old is not None:
            self._size -= old.size
        self._entries[identity] = template
        self._size += template.size
        while self._size > self.budget:
            _, dropped = self._entries.popitem(last=False)
            self._size -= dropped.size
