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
from collections.abc import Generator, Iterator

from pkgcache.digests.values import Digest, from_hex, from_sri
from pkgcache.registries.links import Bases
from pkgcache.store.paths import CacheKey

TARBALL = re.compile(rb'"tarball"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
#: Tarball URLs remembered, so a tarball is fetched where its document
#: said; forgotten oldest first past this.
TARBALLS_REMEMBERED = 200_000
#: Bytes of document templates kept (``Templates``).
TEMPLATES_BUDGET = 128 * 1024 * 1024
#: Stored documents remembered as read whole (``Learnt``).
LEARNT_REMEMBERED = 100_000


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
    Cutting costs a pass over the document; joining is one copy, made by
    ``bytes.join`` (``parts`` are the text before the first tarball URL,
    then each tarball's path with the text after it).

    ``cut`` cuts a document at once; ``steps`` pauses every ``STEP``
    tarballs, so that the IOLoop can cut a big document between its other
    work (a thread would hold the interpreter lock against the IOLoop)."""

    #: Tarballs cut between two pauses of ``steps``: a few milliseconds.
    STEP = 16

    def __init__(self, size: int, folder: tuple[str, ...]) -> None:
        self.size = size
        self.parts: list[bytes] = []
        #: The cache folder of the package's tarballs (``<prefix>/<name>/-``).
        self.folder = folder
        #: Each tarball the document names: its file name, its upstream
        #: URL, and the ``integrity`` and ``shasum`` of the ``dist`` that
        #: holds it ("" when it has none; each ``dist`` is read on its
        #: own, the document is never parsed whole). Plain strings: tens
        #: of thousands of objects that the garbage collector need not
        #: walk each time it runs on the IOLoop.
        self.tarballs: list[tuple[str, str, str, str]] = []

    def entries(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[CacheKey, str, tuple[Digest, ...]]]:
        """Tarballs ``start`` to ``end``: cache key, upstream URL, and
        what the file must hash to."""
        for file, url, integrity, shasum in self.tarballs[start:end]:
            digests = from_sri(integrity) if integrity else []
            sha1 = from_hex("sha1", shasum) if shasum else None
            if sha1 is not None:
                digests.append(sha1)
            yield CacheKey((*self.folder, file)), url, tuple(digests)

    @classmethod
    def cut(
        cls, document: bytes, name: str, prefix: tuple[str, ...], bases: Bases
    ) -> Template:
        """``document`` cut at once."""
        steps = cls.steps(document, name, prefix, bases)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    @classmethod
    def steps(
        cls, document: bytes, name: str, prefix: tuple[str, ...], bases: Bases
    ) -> Generator[None, None, Template]:
        """``document`` cut, pausing (a ``yield``) every ``STEP``
        tarballs; the template is the generator's return value."""
        template = cls(len(document), (*prefix, *name.split("/"), "-"))
        parts = template.parts
        at = 0
        for count, match in enumerate(TARBALL.finditer(document), 1):
            if count % cls.STEP == 0:
                yield
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
            dist = dist_around(document, match.start(), url)
            integrity = dist.get("integrity", "") if dist else ""
            shasum = dist.get("shasum", "") if dist else ""
            template.tarballs.append(
                (
                    key.segments[-1],
                    url,
                    integrity if isinstance(integrity, str) else "",
                    shasum if isinstance(shasum, str) else "",
                )
            )
            piece = document[at : match.start(2)]
            if parts:
                parts[-1] += piece
            else:
                parts.append(piece)
            parts.append(json.dumps(key.url_path)[1:-1].encode())
            at = match.end(2)
        if parts:
            parts[-1] += document[at:]
        else:
            parts.append(document)
        return template

    def join(self, base: str) -> bytes:
        """The document with each tarball URL at ``base``."""
        if len(self.parts) == 1:
            return self.parts[0]
        return json.dumps(base)[1:-1].encode().join(self.parts)


def dist_digests(
    document: bytes, name: str, prefix: tuple[str, ...], bases: Bases
) -> list[tuple[CacheKey, tuple[Digest, ...]]]:
    """Each tarball's digests, from the document's versions (or a version
    document's own ``dist``); nothing when it is not JSON, or nested
    beyond the parser's depth. Each version is cut down to its ``dist``
    as it is parsed (``_kept``)."""
    try:
        parsed = json.loads(document, object_hook=_kept)
    except (ValueError, RecursionError):
        return []
    if not isinstance(parsed, dict):
        return []
    versions = parsed.get("versions")
    manifests = list(versions.values()) if isinstance(versions, dict) else [parsed]
    found = []
    for manifest in manifests:
        dist = manifest.get("dist") if isinstance(manifest, dict) else None
        if not isinstance(dist, dict):
            continue
        entry = dist_entry(dist, name, prefix, bases)
        if entry is not None:
            found.append(entry)
    return found


def _kept(parsed: dict[str, object]) -> dict[str, object]:
    """One parsed JSON object; a version's manifest cut down to its
    ``dist``."""
    dist = parsed.get("dist")
    return parsed if dist is None else {"dist": dist}


def dist_entry(
    dist: dict[str, object], name: str, prefix: tuple[str, ...], bases: Bases
) -> tuple[CacheKey, tuple[Digest, ...]] | None:
    """A ``dist`` object's tarball key and digests; None when it names no
    tarball of a configured host or no digest."""
    tarball = dist.get("tarball")
    if not isinstance(tarball, str) or bases.cache_path(tarball) is None:
        return None
    key = tarball_key(prefix, name, tarball)
    digests: list[Digest] = []
    integrity = dist.get("integrity")
    if isinstance(integrity, str):
        digests += from_sri(integrity)
    shasum = dist.get("shasum")
    if isinstance(shasum, str):
        sha1 = from_hex("sha1", shasum)
        if sha1 is not None:
            digests.append(sha1)
    if key is None or not digests:
        return None
    return key, tuple(digests)


def check_document(body: bytes) -> bytes:
    """``body`` itself when it is a JSON object (what every registry
    document is); ValueError otherwise: a maintenance page in HTML, a
    truncated or hostile document (nested beyond the parser's depth) is
    not stored. Objects are dropped as they are parsed, so the check
    costs little memory and lets the IOLoop's thread run meanwhile."""
    try:
        parsed = json.loads(body, object_pairs_hook=_dropped)
    except UnicodeDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    if parsed is not _OBJECT:
        raise ValueError("not a JSON object")
    return body


_OBJECT = object()


def _dropped(_pairs: list[tuple[str, object]]) -> object:
    return _OBJECT


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


class Learnt:
    """The stored documents (by identity: path, inode, size, mtime) whose
    tarballs and digests were learnt since the start, so each stored
    version is read whole once; the oldest forgotten first past
    ``limit``."""

    def __init__(self, limit: int = LEARNT_REMEMBERED) -> None:
        self.limit = limit
        self._identities: OrderedDict[object, None] = OrderedDict()

    def __contains__(self, identity: object) -> bool:
        return identity in self._identities

    def add(self, identity: object) -> None:
        self._identities[identity] = None
        self._identities.move_to_end(identity)
        while len(self._identities) > self.limit:
            self._identities.popitem(last=False)


#: How far after a ``"dist"`` key its object may end, and where it
#: usually does (read first).
DIST_LIMIT = 65536
_DIST_USUAL = 4096
_DECODER = json.JSONDecoder()
_DIST = re.compile(rb'"dist"\s*:\s*')


def dist_around(document: bytes, tarball_at: int, url: str) -> dict[str, object] | None:
    """The ``dist`` object that holds the ``"tarball"`` key at
    ``tarball_at`` (whose value is ``url``); None when it cannot be read
    on its own."""
    start = document.rfind(b'"dist"', max(0, tarball_at - DIST_LIMIT), tarball_at)
    found = _DIST.match(document, start) if start >= 0 else None
    if found is None:
        return None
    for limit in (_DIST_USUAL, DIST_LIMIT):
        text = document[found.end() : found.end() + limit].decode("utf-8", "replace")
        try:
            dist, _end = _DECODER.raw_decode(text)
            break
        except ValueError:
            continue
        except RecursionError:
            return None
    else:
        return None
    if not isinstance(dist, dict) or dist.get("tarball") != url:
        return None
    return dist
