"""What the end of a download does to the cache, in one place: a complete
file published with its record, a stored copy confirmed by a 304, a copy
gone upstream removed with its record.

``fetching/download.py`` says what happened; this decides nothing but
carries it out on disk, so the publish step and the records stay the
store's (invariants 2, 7 and 11 in ``docs/architecture.md``). The store
counts each file it puts in place or removes in its ``CacheUsage``, the
old version's size included; the records in ``.meta`` are not counted.
"""

from __future__ import annotations

import logging
import os

from pkgcache.clock import Clock
from pkgcache.store.cache import CacheStore, StoreError
from pkgcache.store.meta import MetaStore, Validators
from pkgcache.store.partial import PartialFile
from pkgcache.store.paths import CacheKey

log = logging.getLogger("pkgcache.store")


class Keeping:
    """Publishes, confirms and removes stored versions."""

    def __init__(self, store: CacheStore, meta: MetaStore, clock: Clock) -> None:
        self.store = store
        self.meta = meta
        self.clock = clock

    def publish(
        self,
        partial: PartialFile,
        key: CacheKey,
        mtime: float | None,
        record: Validators | None,
    ) -> bool:
        """Put the complete ``partial`` file at ``key`` (``mtime``: the
        upstream's date) and write ``record`` for it, if any (a volatile
        file's validators, a verified file's digest). False, with the
        partial file discarded and a log line, when it cannot be stored."""
        try:
            final = partial.publish(key, mtime)
        except StoreError as error:
            log.error("cannot store %s: %s", key, error)
            partial.discard()
            return False
        self.store.storage_works()
        if record is not None:
            try:
                result = os.stat(final)
            except OSError:
                return True
            self.meta.write(key, result, record)
        return True

    def link(self, key: CacheKey, also: CacheKey, record: Validators | None) -> None:
        """The file just published at ``key`` at ``also`` too (a hard
        link: one copy on disk), with ``record``; nothing when it cannot
        be made (logged)."""
        try:
            final = self.store.link(key, also)
            result = os.stat(final)
        except (StoreError, OSError) as error:
            log.warning("cannot store %s as %s too: %s", key, also, error)
            return
        if record is not None:
            self.meta.write(also, result, record)

    def confirm(self, key: CacheKey) -> None:
        """A 304: the stored copy is current; it is fresh from now on."""
        try:
            result = os.stat(self.store.final_path(key))
        except OSError:
            return
        self.meta.confirmed(key, result, self.clock.now())

    def gone(self, key: CacheKey) -> None:
        """The file is gone upstream (404 or 410 to a revalidation): the
        stored copy and its record go too. Readers that hold the copy open
        keep their view."""
        self.store.remove(key)
        self.meta.forget(key)
