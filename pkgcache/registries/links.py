"""Which upstream URLs a registry serves through the cache, and the
host-free cache path each one becomes.

A link is taken when it lies under one of the repository's configured
bases (its sources and file_sources), at a path boundary, and carries no
query (a signed or dynamic URL cannot be keyed by its path). It becomes
the repository's prefix followed by the link's path below that base, so
``https://files.example.org/packages/ab/x.whl`` with the base
``https://files.example.org`` and the prefix ``/pypi/`` is
``/pypi/packages/ab/x.whl``. Every other link is left as it was: the
proxy never fetches a host that is not configured.

The base test is made on the path as a server reads it: dot segments
(``.``, ``..``, and their percent-encoded spellings ``%2e``) are removed
first (RFC 3986 5.2.4), so ``SOURCE/../secret/x.tgz`` is not "under"
``SOURCE``, and a link that is taken is fetched by its resolved path. A
link with a dot segment behind an encoded slash or a backslash
(``..%2f``, which some servers decode) is never taken.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from dataclasses import dataclass, field

log = logging.getLogger("pkgcache.registries")

#: ``%2e`` in any case: an unreserved dot, the same as ``.`` (RFC 3986 6.2.2.2).
_ENCODED_DOT = re.compile("%2e", re.IGNORECASE)
#: What some servers read as a path separator although RFC 3986 does not.
_SEPARATOR_LIKE = re.compile(r"%2f|%5c|\\", re.IGNORECASE)


class ForeignHosts:
    """The hosts whose links were left as they are, each logged once per
    daemon (a page of a thousand links logs one line); at most ``limit``
    remembered. Built by the registry fronts; safe from the rewriting
    threads."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, netloc: str) -> None:
        host = netloc.rpartition("@")[2]
        with self._lock:
            if host in self._logged or len(self._logged) >= self.limit:
                return
            self._logged.add(host)
        log.warning(
            "links to %s are left as they are: it is not a configured source", host
        )


@dataclass(frozen=True)
class Bases:
    """The bases a repository's links may point at, and its prefix;
    ``foreign``: where links to other hosts are told (None: not logged)."""

    urls: tuple[str, ...]
    prefix: str
    foreign: ForeignHosts | None = field(default=None, compare=False)

    def cache_path(self, url: str) -> str | None:
        """The path below the prefix for ``url`` (absolute, no fragment),
        or None when it is not served through the cache."""
        found = self.base_and_path(url)
        if found is None:
            if "?" not in url and self.foreign is not None:
                self.foreign.seen(urllib.parse.urlsplit(url).netloc)
            return None
        return found[1]

    def base_and_path(self, url: str) -> tuple[str, str] | None:
        """The base ``url`` lies under and its path below it (dot segments
        resolved); None (and nothing logged) when it lies under none."""
        if "?" in url:
            return None
        if "/." not in url and "%" not in url and "\\" not in url:
            for base in self.urls:  # the common case: spelled as the base is
                if url.startswith(base + "/") and "@" not in base:
                    below = url[len(base) + 1 :]
                    return (base, below) if below else None
        parts = urllib.parse.urlsplit(url)
        if _hidden_dot_segment(parts.path):
            return None
        if parts.scheme not in ("http", "https"):
            return None
        parts = parts._replace(path=remove_dot_segments(parts.path))
        for base in self.urls:
            found = _below(base, parts)
            if found is not None:
                return base, found
        return None

    def rewrite(self, url: str) -> str | None:
        """``url`` as the host-free cache path with its fragment, or None."""
        absolute, _, fragment = url.partition("#")
        below = self.cache_path(absolute)
        if below is None:
            return None
        return self.prefix + below + ("#" + fragment if fragment else "")


def _hidden_dot_segment(path: str) -> bool:
    """Does a segment of ``path`` hold a dot segment behind an encoded
    slash or a backslash (``..%2f``, ``..\\``)?"""
    for segment in _ENCODED_DOT.sub(".", path).split("/"):
        parts = _SEPARATOR_LIKE.split(segment)
        if len(parts) > 1 and any(part in (".", "..") for part in parts):
            return True
    return False


def remove_dot_segments(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments (``%2e`` counted as a
    dot) resolved as RFC 3986 5.2.4 does; a ``..`` above the root stays
    at the root."""
    segments = _ENCODED_DOT.sub(".", path).split("/")
    if not any(segment in (".", "..") for segment in segments):
        return path
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                kept.append("")
        elif segment == "..":
            if len(kept) > 1:
                kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/".join(kept)


def _below(base: str, parts: urllib.parse.SplitResult) -> str | None:
    base_parts = urllib.parse.urlsplit(base)
    if (base_parts.scheme, _host_port(base_parts)) != (parts.scheme, _host_port(parts)):
        return None
    base_path = base_parts.path.rstrip("/")
    path = parts.path
    if base_path and not (path == base_path or path.startswith(base_path + "/")):
        return None
    below = path[len(base_path) :].lstrip("/")
    return below or None


def _host_port(parts: urllib.parse.SplitResult) -> tuple[str, int | None]:
    """Host and port, with the scheme's default port made explicit and
    credentials dropped (a source may carry a user name)."""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "", parts.port or default)
