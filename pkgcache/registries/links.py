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
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass

log = logging.getLogger("pkgcache.registries")

#: Foreign hosts already logged, so a page of a thousand links logs once.
_LOGGED_LIMIT = 1000
_logged: set[str] = set()


@dataclass(frozen=True)
class Bases:
    """The bases a repository's links may point at, and its prefix."""

    urls: tuple[str, ...]
    prefix: str

    def cache_path(self, url: str) -> str | None:
        """The path below the prefix for ``url`` (absolute, no fragment),
        or None when it is not served through the cache."""
        found = self.base_and_path(url)
        if found is None:
            if "?" not in url:
                _log_foreign(urllib.parse.urlsplit(url).netloc)
            return None
        return found[1]

    def base_and_path(self, url: str) -> tuple[str, str] | None:
        """The base ``url`` lies under and its path below it; None (and
        nothing logged) when it lies under none."""
        if "?" in url:
            return None
        for base in self.urls:  # the common case: spelled as the base is
            if url.startswith(base + "/") and "@" not in base:
                below = url[len(base) + 1 :]
                return (base, below) if below else None
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return None
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


def _log_foreign(netloc: str) -> None:
    host = netloc.rpartition("@")[2]
    if host in _logged or len(_logged) >= _LOGGED_LIMIT:
        return
    _logged.add(host)
    log.warning("links to %s are left as they are: it is not a configured source", host)
