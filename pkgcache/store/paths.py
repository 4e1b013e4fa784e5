"""Turn a request target into a cache key; every confinement rule lives here.

This module is pure: no I/O, the same input always gives the same answer or
the same refusal. Everything that maps a URL to a place on disk or to an
upstream URL goes through :func:`cache_key`, so a path that passes here can
be joined onto the cache root without escaping it (symlinks on disk are the
store's and the hit handler's concern).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

#: Longest single path segment we accept: NAME_MAX on Linux file systems.
MAX_SEGMENT_BYTES = 255
#: Longest whole path we accept, well under PATH_MAX once joined to a root.
MAX_PATH_BYTES = 2048

#: Characters left unescaped when a cache key is sent upstream. Sub-delims
#: such as ``+`` appear in real distfile names (``gtk+-3.24.tar.xz``) and
#: mirrors expect them as written.
_UPSTREAM_SAFE = "/!$&'()*+,;=:@~-._"

#: Characters no file name may hold: every character of Unicode categories
#: Cc (C0 controls, DEL, C1 controls such as NEL and CSI), Zl (U+2028) and
#: Zp (U+2029), which end or rewrite a line in logs and terminals, and the
#: Bidi_Control characters (category Cf: U+061C, U+200E, U+200F,
#: U+202A-U+202E, U+2066-U+2069), which make a name display as another
#: one. Other Cf characters (ZWJ, ZWNJ, soft hyphen) occur in real names in
#: some scripts and reorder nothing, so they pass. Spelled out rather than
#: looked up with ``unicodedata`` per character: the sets are fixed by the
#: Unicode standard, and a hit is checked on every request.
_REFUSED_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


class PathRefused(Exception):
    """The request target can never name a cached file.

    ``status`` is the HTTP status to answer (400 for malformed or hostile
    paths, 404 for paths that are valid HTTP but never files, such as
    directories and hidden names).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class CacheKey:
    """A validated file path: decoded segments, none empty, none hidden."""

    segments: tuple[str, ...]

    @property
    def relative(self) -> str:
        """The path below the cache root, with ``/`` separators."""
        return "/".join(self.segments)

    @property
    def url_path(self) -> str:
        """The path to append to a source URL, percent-encoded again."""
        return "/" + urllib.parse.quote(self.relative, safe=_UPSTREAM_SAFE)

    def __str__(self) -> str:
        return "/" + self.relative


def target_path(target: str) -> str:
    """Return the still-encoded path of a request target.

    Origin-form (``/a/b?x``) and absolute-form (``http://mirror/a/b``, what a
    client with ``http_proxy`` set sends) both give ``/a/b``: the host named
    in an absolute-form target is ignored, only configured sources are asked.
    """
    if not target.startswith("/"):
        parts = urllib.parse.urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise PathRefused(400, "request target is neither a path nor a URL")
        target = parts.path or "/"
    return target.split("?", 1)[0].split("#", 1)[0]


@dataclass(frozen=True)
class RequestPath:
    """A validated request path that may name a folder: its segments (none
    empty, none hidden, possibly none at all) and whether it ended in
    ``/``. Registries (``registries/``) answer some folders, such as a
    PyPI project page; everything else needs a file (``cache_key``)."""

    segments: tuple[str, ...]
    folder: bool

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.segments)


def request_path(target: str) -> RequestPath:
    """Validate a request target, folders allowed (see ``cache_key``).

    A segment ``@scope%2Fname`` (npm's spelling of a scoped package) is the
    two segments ``@scope`` and ``name``: the only encoded ``/`` accepted.
    """
    raw = target_path(target)
    if len(raw) > MAX_PATH_BYTES * 3:
        raise PathRefused(414, "path too long")
    segments: list[str] = []
    total = 0
    for raw_segment in raw.split("/"):
        if not raw_segment:
            continue
        for segment in _scoped(raw_segment):
            if segment in (".", ".."):
                raise PathRefused(400, "dot segment in path")
            if segment.startswith("."):
                raise PathRefused(404, "hidden names are not served")
            size = len(segment.encode())
            if size > MAX_SEGMENT_BYTES:
                raise PathRefused(414, "path segment too long")
            total += size + 1
            segments.append(segment)
    if total > MAX_PATH_BYTES:
        raise PathRefused(414, "path too long")
    return RequestPath(tuple(segments), not segments or raw.endswith("/"))


def cache_key(target: str) -> CacheKey:
    """Validate a request target and return its cache key.

    ``target`` is the request target as tornado gives it: the bytes of the
    request line decoded as latin-1 (raw bytes and ``%XX`` escapes alike
    are UTF-8 once decoded).

    Refused (``PathRefused``): percent-encoded ``/`` or ``\\``, NUL and other
    control characters, line and paragraph separators and bidi controls
    (``_REFUSED_CHARS``), backslashes, bytes that are not UTF-8, ``.`` and
    ``..`` segments (400); a path ending in ``/`` or naming only the root,
    and any segment starting with ``.`` (404: directories and hidden names,
    which include the store's private folders, are never served). Empty
    segments (``a//b``) are collapsed.
    """
    path = request_path(target)
    if path.folder:
        raise PathRefused(404, "directories are not served")
    return path.key


def _scoped(raw_segment: str) -> tuple[str, ...]:
    """One raw segment decoded; ``@scope%2Fname`` as two."""
    if raw_segment.startswith("@") and raw_segment.count("%") == 1:
        scope, _slash, name = raw_segment.partition("%")
        if name[:2].lower() == "2f" and len(scope) > 1 and len(name) > 2:
            return _decode_segment(scope), _decode_segment(name[2:])
    return (_decode_segment(raw_segment),)


def _decode_segment(raw_segment: str) -> str:
    """Percent-decode one segment, refusing anything that is not a plain name.

    ``raw_segment`` holds bytes, one character each, as tornado decodes the
    request line (latin-1): a raw UTF-8 name and its percent-encoded form
    give the same name, and a character above U+00FF cannot come from the
    wire (400).
    """
    try:
        raw_bytes = raw_segment.encode("latin-1")
    except UnicodeEncodeError:
        raise PathRefused(400, "path is not bytes") from None
    try:
        segment = urllib.parse.unquote_to_bytes(raw_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused(400, "path is not UTF-8") from None
    if "/" in segment or "\\" in segment:
        raise PathRefused(400, "encoded separator or backslash in path")
    if _REFUSED_CHARS.search(segment):
        raise PathRefused(400, "control character in path")
    return segment
