"""What a Go checksum database says a module version's zip and ``go.mod``
hash to, read from its lookup record, which is fetched through the cache
itself: the record is stored at the very path a client asking the cache
for it (``<prefix>sumdb/<host>/lookup/<module>@<version>``) would use, a
download of it in flight is joined, and it is asked of the database only
when no copy is stored. A stored copy of any age will do: the database
is append-only, so the hash lines of a version never change (only the
signed tree note after them does, which the go client checks).
"""

from __future__ import annotations

import logging
import urllib.parse

from pkgcache.digests.dirhash import MAX_RECORD, record_hashes
from pkgcache.fetching.finishing import Verify
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.upstream import Outcome, Route
from pkgcache.registries.gopaths import encode
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.rules import Repository
from pkgcache.store.cache import CacheStore, OutsideCache, PathConflict
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.registries")

#: Not stated by the database: no check is possible (counted unverified).
NOT_LISTED = None


def sumdb_host(url: str) -> str:
    """The name the go client gives a checksum database (``GOSUMDB``) and
    asks for under ``<proxy>/sumdb/<name>/``: its URL's host name."""
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def lookup_below(module: str, version: str) -> tuple[str, ...]:
    """The path of a lookup record below the database's URL, as segments."""
    return ("lookup", *f"{encode(module)}@{encode(version)}".split("/"))


class LookupRecords:
    """Lookup records read through the cache (``store`` and ``downloads``:
    the ones every request uses)."""

    def __init__(self, store: CacheStore, downloads: Downloads) -> None:
        self.store = store
        self.downloads = downloads

    async def hashes(
        self, repository: Repository, module: str, version: str
    ) -> tuple[str, str] | str | None:
        """The ``h1:`` of the zip and of the ``go.mod`` of ``module`` at
        ``version``; None when the database does not list that version
        (404 or 410: a private module); a string saying why the record
        could not be had or read otherwise."""
        sumdb = repository.settings.sumdb
        assert sumdb is not None
        below = lookup_below(module, version)
        key = CacheKey((*repository.prefix, "sumdb", sumdb_host(sumdb), *below))
        record = self._stored(key)
        if record is None:
            fetched = await self._fetch(
                repository, key, Route((sumdb,), CacheKey(below).url_path)
            )
            if fetched is None or isinstance(fetched, str):
                return fetched
            record = fetched
        if isinstance(record, str):
            return record
        found = record_hashes(record, module, version)
        if found is None:
            return f"the checksum database's record of {module}@{version} states no h1:"
        return found

    def _stored(self, key: CacheKey) -> bytes | str | None:
        """The stored record, or why it cannot be read; None: none stored."""
        try:
            cached = self.store.lookup(key)
            if cached is None:
                return None
            if cached.stat.st_size > MAX_RECORD:
                return f"the stored {key} is larger than a lookup record"
            return self.store.read_verified(cached)
        except (OSError, OutsideCache, PathConflict) as error:
            return f"cannot read the stored {key}: {error}"

    async def _fetch(
        self, repository: Repository, key: CacheKey, route: Route
    ) -> bytes | str | None:
        """The record, from a download of it (joined or started)."""
        if repository.mode is NetworkMode.OFFLINE:
            return "the repository is offline and the record is not stored"
        if self.downloads.known_missing(key):
            return NOT_LISTED
        download = self.downloads.get(key)
        if download is None:
            settings = repository.settings
            plan = FetchPlan(
                route=route,
                record_validators=True,
                repository=repository.name,
                negative_for=settings.negative_for,
                finishing=(Verify(),),
            )
            download = self.downloads.start(key, plan)
        await download.wait_for_end()
        result = download.result
        assert result is not None
        if result.outcome is Outcome.NOT_FOUND:
            log.info("the checksum database does not list %s", key)
            return NOT_LISTED
        if download.published:
            stored = self._stored(key)
            return "the record was removed meanwhile" if stored is None else stored
        kept = download.kept_body()
        if kept is not None:
            return kept
        return f"no lookup record from the checksum database: {result.detail}"
