"""The cargo front: a sparse registry (``sparse+http://cache/<prefix>``)
and its ``.crate`` files, under a repository's prefix.

- ``<prefix>config.json``: volatile, stored as the upstream gave it under
  a hidden name (``.config.json``); each answer has its ``dl`` at the
  cache (``public_url``, else the request's Host) and no ``api``.
- ``<prefix>1/a``, ``2/ab``, ``3/a/abc``, ``ab/cd/abcd...``: index files,
  volatile (revalidated with the upstream's ETag / Last-Modified),
  stored at their own path; the ``cksum`` of each version they list is
  learnt into the ``DigestBook`` when one is stored (``rewrite``, in a
  thread) or answered from the cache (``learn``, once per stored copy).
- ``<prefix>files/<name>/<name>-<version>.crate``: a ``.crate``,
  immutable, fetched from the ``file_sources`` (the upstream's ``dl``
  templates) and checked against its index line's ``cksum`` before it is
  stored. A ``.crate`` whose cksum is not known yet (a client that had
  the index file from elsewhere, a restart) waits for its index file to
  be read or fetched first (``Target.before``): one that the reachable
  index does not list is a 404, and when the index cannot be fetched the
  ``.crate`` is not fetched either (502): no ``.crate`` is ever stored
  unchecked.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable

from tornado.ioloop import IOLoop

from pkgcache.clock import Clock
from pkgcache.digests.book import DigestBook, Table, prepared
from pkgcache.digests.values import Digest, from_hex
from pkgcache.fetching.finishing import Rewrite, Verify
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.upstream import Outcome, ResponseHead, Route
from pkgcache.registries.cargoindex import (
    DL_TEMPLATE,
    FILES,
    check_config,
    config_for,
    crate_file,
    crate_of_file,
    download_url,
    index_entries,
    index_name,
    index_path,
    split_url,
)
from pkgcache.registries.targets import Document, Refusal, Resolution, Target
from pkgcache.repositories.network import NetworkMode
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.store.cache import CacheStore
from pkgcache.store.paths import CacheKey, RequestPath

log = logging.getLogger("pkgcache.registries")

JSON_TYPE = "application/json"
INDEX_TYPE = "text/plain; charset=utf-8"
#: Stored index files remembered as learnt; forgotten all at once past
#: this (learning again is harmless).
LEARNT_REMEMBERED = 100_000
#: Index files remembered as fetched for a ``.crate`` they did not list;
#: the oldest forgotten first past this.
ASKED_REMEMBERED = 10_000


def cksums(
    data: bytes, name: str, prefix: tuple[str, ...]
) -> list[tuple[CacheKey, tuple[Digest, ...]]]:
    """The ``.crate`` keys and SHA-256 digests the index file of crate
    ``name`` vouches for: its own crate's versions only, so a hostile
    index file of one crate cannot set the digest of another's files."""
    found: list[tuple[CacheKey, tuple[Digest, ...]]] = []
    for crate, version, cksum in index_entries(data, name):
        digest = from_hex("sha256", cksum)
        if digest is not None:
            key = CacheKey((*prefix, FILES, crate, crate_file(crate, version)))
            found.append((key, (digest,)))
    return found


class CargoFront:
    """Resolves cargo requests; learns the ``cksum`` of each ``.crate``
    from the index files, and reads or fetches an index file for a
    ``.crate`` whose cksum it does not know (``_vouched``)."""

    def __init__(
        self,
        store: CacheStore,
        digests: DigestBook,
        downloads: Downloads | None,
        clock: Clock | None = None,
    ) -> None:
        """``store``: where stored index files are read; ``digests``: where
        the cksums go, for the ``.crate`` downloads to check;
        ``downloads``: where an index file a ``.crate`` needs is fetched
        (None: only stored index files are read); ``clock``: when an
        index file was fetched, so that ``.crate`` files it does not list
        do not fetch it again within ``fresh_for``."""
        self.store = store
        self.book = digests
        self.downloads = downloads
        self.clock = clock or Clock()
        #: Index files fetched for a ``.crate`` they did not list: when.
        self._asked: OrderedDict[CacheKey, float] = OrderedDict()
        self._learnt: set[object] = set()
        self._learning: set[object] = set()
        #: Stored index files being read for a ``.crate``, by key.
        self._reading: dict[CacheKey, asyncio.Future[None]] = {}

    def resolve(
        self,
        repository: Repository,
        path: RequestPath,
        public_base: Callable[[], str | None],
    ) -> Resolution:
        below = path.segments[len(repository.prefix) :]
        if path.folder or not below:
            return Refusal(404, "directories are not served")
        if below == ("config.json",):
            return self._config(repository, public_base)
        crate = crate_of_file(below)
        if crate is not None:
            name, version = crate
            key = path.key

            async def vouched() -> Refusal | None:
                return await self._vouched(repository, key, name, version)

            return Target(
                key,
                Policy.IMMUTABLE,
                lambda: self._crate_route(repository, key, name, version),
                before=vouched,
            )
        indexed = index_name(below)
        if indexed is None:
            return Refusal(404, "not a path of a sparse registry")
        return self._index(repository, indexed)

    def _config(
        self, repository: Repository, public_base: Callable[[], str | None]
    ) -> Resolution:
        base = public_base()
        if base is None:
            return Refusal(400, "no usable Host header to name the cache by")
        settings = repository.settings
        files_url = base + urllib.parse.quote(settings.prefix) + DL_TEMPLATE

        def checked(body: bytes, _head: ResponseHead) -> bytes:
            return check_config(body)

        async def finished(stored: bytes, _identity: object | None) -> bytes:
            return config_for(stored, files_url)

        return Target(
            CacheKey((*repository.prefix, ".config.json")),
            Policy.VOLATILE,
            Route(settings.sources, "/config.json"),
            Document(
                "config-" + base,
                (),
                lambda _upstream: JSON_TYPE,
                rewrite=checked,
                finish=finished,
            ),
        )

    def _index(self, repository: Repository, name: str) -> Target:
        prefix = repository.prefix
        loop = IOLoop.current()
        book = self.book

        def rewrite(body: bytes, _head: ResponseHead) -> bytes:
            """In a thread: the index file checked, its cksums handed to
            the IOLoop for the book (before the download's end is, so a
            ``.crate`` waiting for this index finds them)."""
            table = prepared(cksums(body, name, prefix))
            loop.add_callback(book.merge, table)
            return body

        def learn(read: Callable[[], bytes], identity: object) -> None:
            self._learn(name, prefix, read, identity)

        key = CacheKey((*prefix, *index_path(name)))
        return Target(
            key,
            Policy.VOLATILE,
            Route(repository.settings.sources, CacheKey(index_path(name)).url_path),
            Document(
                "index", (), lambda _upstream: INDEX_TYPE, rewrite=rewrite, learn=learn
            ),
        )

    def _crate_route(
        self, repository: Repository, key: CacheKey, name: str, version: str
    ) -> Route:
        """The ``file_sources`` (``dl`` templates) in order, each with the
        ``.crate``'s path on it. Worked out on a miss only."""
        known = self.book.get(key)
        cksum = known[0].value.hex() if known else None
        targets = []
        for template in repository.settings.file_sources:
            url = download_url(template, name, version, cksum)
            if url is not None:
                targets.append(split_url(url))
        unique = list(dict.fromkeys(targets))
        return Route(
            tuple(source for source, _ in unique),
            unique[0][1] if unique else "/",
            tuple(path for _, path in unique),
        )

    async def _vouched(
        self, repository: Repository, key: CacheKey, name: str, version: str
    ) -> Refusal | None:
        """Before a ``.crate`` is fetched: make sure its cksum is known,
        from the stored index file, else from the index file fetched
        (through the download registry, so it is stored and shared).
        A refusal when the index does not list it or cannot be reached.
        An index file fetched for a version it did not list is not asked
        again for another within ``fresh_for``: a client asking for
        versions that do not exist costs one upstream request per
        ``fresh_for``, not one each."""
        if self.book.get(key):
            return None
        index = self._index(repository, name)
        await self._read_stored(index.key, name, repository.prefix)
        if self.book.get(key):
            return None
        if repository.mode is NetworkMode.OFFLINE or self.downloads is None:
            return None  # nothing can be fetched: the request choice answers
        asked = self._asked.get(index.key)
        fresh_for = repository.settings.fresh_for
        if asked is not None and self.clock.monotonic() - asked < fresh_for:
            return Refusal(404, f"the index of {name} does not list {version}")
        download = self.downloads.get(index.key)
        if download is None:
            document = index.document
            assert document is not None and document.rewrite is not None
            settings = repository.settings
            plan = FetchPlan(
                route=index.route,
                finishing=(Verify(), Rewrite(document.rewrite)),
                record_validators=True,
                repository=repository.name,
                negative_for=settings.negative_for,
            )
            download = self.downloads.start(index.key, plan)
        await download.wait_for_end()
        if not self.book.get(key) and (download.not_modified or download.published):
            await self._read_stored(index.key, name, repository.prefix)
        if self.book.get(key):
            return None
        result = download.result
        if result is not None and result.outcome is Outcome.NOT_FOUND:
            return Refusal(404, f"the index has no crate {name}")
        if download.complete or download.not_modified:
            self._asked[index.key] = self.clock.monotonic()
            self._asked.move_to_end(index.key)
            while len(self._asked) > ASKED_REMEMBERED:
                self._asked.popitem(last=False)
            return Refusal(404, f"the index of {name} does not list {version}")
        detail = result.detail if result is not None else "no answer"
        log.warning(
            "not fetching %s: its index file %s could not be fetched (%s)",
            key,
            index.key,
            detail,
        )
        return Refusal(502, f"the index file of {name} could not be fetched: {detail}")

    async def _read_stored(
        self, index: CacheKey, name: str, prefix: tuple[str, ...]
    ) -> None:
        """Learn the cksums of the stored index file ``index`` (read in a
        thread; one read at a time per file, however many ``.crate``
        requests wait for it)."""
        reading = self._reading.get(index)
        if reading is None:
            store = self.store

            def table() -> Table:
                data = store.read_stored(index)
                return prepared(cksums(data, name, prefix)) if data else {}

            async def read() -> None:
                try:
                    found = await IOLoop.current().run_in_executor(None, table)
                except ValueError as error:
                    log.warning("the stored index file %s is refused: %s", index, error)
                    return
                finally:
                    self._reading.pop(index, None)
                self.book.merge(found)

            reading = asyncio.ensure_future(read())
            self._reading[index] = reading
        await asyncio.shield(reading)

    def _learn(
        self,
        name: str,
        prefix: tuple[str, ...],
        read: Callable[[], bytes],
        identity: object,
    ) -> None:
        """A stored index file answered: learn its cksums unless this copy's
        are known or being read (in a thread, not waited for: after a
        restart the book starts empty)."""
        if identity in self._learnt or identity in self._learning:
            return
        self._learning.add(identity)

        def table() -> Table:
            return prepared(cksums(read(), name, prefix))

        def learnt(done: asyncio.Future[Table]) -> None:
            self._learning.discard(identity)
            error = done.exception()
            if error is not None:
                log.warning("cannot learn the cksums of %s: %s", name, error)
                return
            self.book.merge(done.result())
            if len(self._learnt) >= LEARNT_REMEMBERED:
                self._learnt.clear()
            self._learnt.add(identity)

        running = IOLoop.current().run_in_executor(None, table)
        running.add_done_callback(learnt)
