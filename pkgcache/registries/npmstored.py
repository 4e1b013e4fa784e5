"""A stored npm document read for its tarballs without being parsed on
the IOLoop: cut into a ``Template`` (at once when small, in steps when
big), or searched for one tarball's name a chunk at a time
(``find_tarball_in``), reading only the ``"tarball"`` value and the
``dist`` object around it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from tornado.ioloop import IOLoop

from pkgcache.digests.values import Digest
from pkgcache.registries.links import Bases
from pkgcache.registries.npmdocuments import (
    DIST_LIMIT,
    TARBALL,
    Template,
    dist_around,
    dist_entry,
    tarball_key,
)
from pkgcache.store.paths import CacheKey

#: Documents larger than this are read in a thread and cut in steps: a big
#: one (thousands of versions) takes a good part of a second.
_CUT_INLINE = 256 * 1024
#: A size that is always read in a thread and cut in steps.
CUT_IN_STEPS = _CUT_INLINE + 1
#: The largest stored document searched on the IOLoop for a tarball it
#: has not cut yet (a search takes about a millisecond a megabyte).
SEARCH_ON_LOOP = 4 * 1024 * 1024


async def cut_document(
    read: Callable[[], bytes],
    size: int,
    name: str,
    prefix: tuple[str, ...],
    bases: Bases,
) -> Template:
    """The template of the document ``read`` returns (``size`` bytes): a
    small one cut at once; a big one read in a thread and cut on the
    IOLoop a step at a time (``Template.steps``: a few milliseconds each,
    other requests served between them). A thread would hold the
    interpreter lock against the IOLoop for as long as it cuts."""
    if size <= _CUT_INLINE:
        return Template.cut(read(), name, prefix, bases)
    document = await IOLoop.current().run_in_executor(None, read)
    steps = Template.steps(document, name, prefix, bases)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(0)


def find_tarball(
    document: bytes, key: CacheKey, name: str, prefix: tuple[str, ...], bases: Bases
) -> tuple[str, tuple[Digest, ...]] | None:
    """Where the document says the tarball ``key`` lives, and what its
    ``dist`` says it hashes to, without parsing the whole document: the
    tarball's file name is searched for, then only the ``"tarball"``
    value ending there and its ``dist`` object are read. None when the
    document does not list it (at a configured host)."""
    needle = b"/" + key.segments[-1].encode() + b'"'
    at = 0
    for _ in range(_FIND_LIMIT):
        end = document.find(needle, at)
        if end < 0:
            return None
        at = end + 1
        value_end = end + len(needle) - 1
        start = document.rfind(b'"tarball"', max(0, end - _URL_LIMIT), end)
        match = TARBALL.match(document, start) if start >= 0 else None
        if match is None or match.end(2) != value_end:
            continue
        try:
            url = json.loads(b'"' + match.group(2) + b'"')
        except ValueError:
            continue
        if tarball_key(prefix, name, url) != key or bases.cache_path(url) is None:
            continue
        dist = dist_around(document, start, url)
        entry = dist_entry(dist, name, prefix, bases) if dist else None
        return url, entry[1] if entry is not None else ()
    return None


#: How many places naming a file ``find_tarball`` looks at, and how far
#: before its name a tarball URL may start.
_FIND_LIMIT = 64
_URL_LIMIT = 8192
#: Bytes read at a time when ``find_tarball_in`` searches a stored file.
_SCAN_CHUNK = 64 * 1024


def find_tarball_in(
    read: Callable[[int, int], bytes],
    size: int,
    key: CacheKey,
    name: str,
    prefix: tuple[str, ...],
    bases: Bases,
) -> tuple[str, tuple[Digest, ...]] | None:
    """``find_tarball`` on a stored document of ``size`` bytes that is
    read a piece at a time (``read(length, offset)``, as ``os.pread``
    takes them after the descriptor): its name searched
    for chunk by chunk, and only the part around a place it is named read
    again whole, so the memory is a few chunks however big the document."""
    needle = b"/" + key.segments[-1].encode() + b'"'
    overlap = len(needle) - 1
    around = _URL_LIMIT + DIST_LIMIT
    offset = 0
    while offset < size:
        chunk = read(_SCAN_CHUNK + overlap, offset)
        at = chunk.find(needle)
        while at >= 0:
            position = offset + at
            start = max(0, position - around)
            window = read(position - start + around, start)
            found = find_tarball(window, key, name, prefix, bases)
            if found is not None:
                return found
            at = chunk.find(needle, at + 1)
        offset += _SCAN_CHUNK
    return None
