"""The fronts of the registry kinds, by kind: the one place the handler
and the small-hit path ask what a registry path is."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pkgcache.digests.book import DigestBook
from pkgcache.registries import pypi
from pkgcache.registries.npm import NpmFront
from pkgcache.registries.targets import Resolution
from pkgcache.repositories.rules import Repository
from pkgcache.store.paths import CacheKey, RequestPath

KINDS = ("pypi", "npm")


class Fronts:
    def __init__(
        self, read_stored: Callable[[CacheKey], bytes | None], digests: DigestBook
    ) -> None:
        """``read_stored(key)``: a stored file's bytes, or None (npm reads
        its stored documents to find where their tarballs live);
        ``digests``: filled with what the indexes say their files hash to."""
        self.npm = NpmFront(read_stored, digests)
        self.pypi_pages = pypi.PageDigests(digests)
        self.digests = digests

    def resolve(
        self,
        repository: Repository,
        path: RequestPath,
        headers: Mapping[str, str],
        query: str = "",
        public_base: Callable[[], str | None] = lambda: None,
    ) -> Resolution | None:
        """What ``path`` is in a registry repository; None when the
        repository is not a registry (its paths are plain files).
        ``query``: the request's query with its ``?``, or empty;
        ``public_base``: the URL clients reach the cache at (npm)."""
        kind = repository.settings.kind
        if kind == "pypi":
            return pypi.resolve(repository, path, headers, query, self.pypi_pages)
        if kind == "npm":
            return self.npm.resolve(repository, path, headers, query, public_base)
        return None
