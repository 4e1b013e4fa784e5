"""Maven: an artifact's digest from the sidecars its repository publishes
beside it (``.sha512``, ``.sha256``, ``.sha1``), known before the
artifact's download starts.

Maven paths are plain files (the ``maven`` preset in
``repositories/presets.py`` says which are volatile), so the front
answers no path itself. What it adds is the check: before an immutable
artifact is fetched, its sidecars are fetched through the cache (a
stored one is read, one in flight is joined, a remembered 404 is not
asked again; each is stored like any file, so the client's own request
for it is a hit), and the strongest that states a digest goes into the
artifact's plan (``finishing.Verify``). The download then publishes
only bytes that match: the artifact never becomes a hit unchecked when
its repository has a sidecar for it.

- The three sidecars are asked at once: most artifacts have only
  ``.sha1`` (and ``.md5``, not looked for), and asking in turn would
  cost two round trips of 404s before every miss.
- No sidecar anywhere (every source answered 404, or none states a
  digest) is not an error: the artifact is stored unverified, as a file
  no index names. A sidecar that could not be fetched (5xx, timeout,
  refused) when no other stated a digest fails the artifact (502): the
  cache cannot tell that the artifact has no sidecar.
- Clients asking for the same artifact at once share one look-up.
- A sidecar that disagrees with its artifact is removed with it
  (``forget_disagreeing``, told of every download's end): a client would
  otherwise find the sidecar of a file the cache refused.
- Volatile files (``maven-metadata.xml``, a ``-SNAPSHOT/`` folder) are
  not checked: the file and its sidecar change, and two requests can see
  two versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pkgcache.digests.sidecars import (
    MAX_SIDECAR,
    ORIGIN,
    SIDECARS,
    is_sidecar,
    parse_sidecar,
)
from pkgcache.digests.values import Digest
from pkgcache.fetching.download import Download
from pkgcache.fetching.finishing import Verify
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.plan import FetchPlan
from pkgcache.fetching.responses import Outcome
from pkgcache.fetching.upstream import Route
from pkgcache.repositories.rules import PathRules, Policy
from pkgcache.store.cache import CacheStore, StoreError
from pkgcache.store.paths import MAX_SEGMENT_BYTES, CacheKey

log = logging.getLogger("pkgcache.maven")

KIND = "maven"


class SidecarUnavailable(Exception):
    """No sidecar stated a digest and one could not be fetched: the
    artifact is not fetched (its digest may exist)."""


def sidecar_key(key: CacheKey, algorithm: str) -> CacheKey:
    """The path of ``key``'s sidecar of ``algorithm``."""
    return CacheKey((*key.segments[:-1], f"{key.segments[-1]}.{algorithm}"))


def is_checked(rules: PathRules) -> bool:
    """Is this path an artifact checked against its sidecars: an
    immutable file of a maven repository that is no checksum itself, and
    whose sidecars' names fit a file name?"""
    if rules.repository.settings.kind != KIND or rules.policy is not Policy.IMMUTABLE:
        return False
    name = rules.below.segments[-1]
    longest = len(name.encode()) + 1 + max(map(len, SIDECARS))
    return not is_sidecar(name) and longest <= MAX_SEGMENT_BYTES


class MavenSidecars:
    """Looks up artifacts' sidecars through the cache (on the IOLoop)."""

    def __init__(
        self,
        store: CacheStore,
        downloads: Downloads,
        rules_for: Callable[[CacheKey], PathRules | None],
    ) -> None:
        """``rules_for``: the repositories' rules (a sidecar is fetched
        and kept as its own policy says)."""
        self.store = store
        self.downloads = downloads
        self.rules_for = rules_for
        #: Look-ups in flight, by artifact: clients of one artifact share one.
        self._looking: dict[CacheKey, asyncio.Future[tuple[Digest, ...]]] = {}

    async def expected(self, key: CacheKey) -> tuple[Digest, ...]:
        """The digest the strongest sidecar of ``key`` states, or none;
        raises ``SidecarUnavailable``."""
        looking = self._looking.get(key)
        if looking is None:
            looking = asyncio.ensure_future(self._look_up(key))
            self._looking[key] = looking
            looking.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(looking)

    def _done(self, key: CacheKey, done: asyncio.Future[tuple[Digest, ...]]) -> None:
        if self._looking.get(key) is done:
            del self._looking[key]

    async def _look_up(self, key: CacheKey) -> tuple[Digest, ...]:
        answers = await asyncio.gather(
            *(self._sidecar(key, algorithm) for algorithm in SIDECARS)
        )
        failures = []
        for algorithm, answer in zip(SIDECARS, answers, strict=True):
            if isinstance(answer, Digest):
                return (answer,)
            if answer:
                failures.append(f"{key}.{algorithm}: {answer}")
        if failures:
            raise SidecarUnavailable(
                "cannot check against its sidecar: " + "; ".join(failures)
            )
        return ()

    async def _sidecar(self, key: CacheKey, algorithm: str) -> Digest | str | None:
        """One sidecar: the digest it states; None when there is none (or
        it states none); why it could not be fetched."""
        side = sidecar_key(key, algorithm)
        rules = self.rules_for(side)
        if rules is None:
            return None
        data = self._stored(side)
        if data is None:
            if self.downloads.known_missing(side):
                return None
            download = self.downloads.get(side) or self.downloads.start(
                side, self._plan(rules)
            )
            await download.wait_for_end()
            fetched = self._fetched(download)
            if isinstance(fetched, str):
                return fetched or None
            data = fetched
        digest = parse_sidecar(algorithm, data)
        if digest is None:
            log.warning("%s states no %s digest: not used", side, algorithm)
        return digest

    def _stored(self, side: CacheKey) -> bytes | None:
        try:
            cached = self.store.lookup(side)
            if cached is None or cached.stat.st_size > MAX_SIDECAR:
                return None if cached is None else b""
            return self.store.read_verified(cached)
        except (OSError, StoreError):
            return None

    def _fetched(self, download: Download) -> bytes | str:
        """A sidecar's download that ended: its bytes (empty when too
        long to be one), "" when it does not exist, else why it failed."""
        result = download.result
        assert result is not None
        if result.outcome is Outcome.NOT_FOUND:
            return ""
        if not download.complete:
            return result.detail or result.outcome.value
        if download.received > MAX_SIDECAR:
            return b""
        if download.published:
            return self.store.read_stored(download.key) or b""
        return download.kept_body() or b""

    @staticmethod
    def _plan(rules: PathRules) -> FetchPlan:
        repository = rules.repository
        return FetchPlan(
            route=Route(repository.sources, rules.upstream_path),
            record_validators=rules.policy is Policy.VOLATILE,
            keep=rules.policy is not Policy.PASS,
            repository=repository.name,
            negative_for=repository.settings.negative_for,
            finishing=(Verify(),),
        )

    def forget_disagreeing(self, download: Download) -> None:
        """A download that ended: when its bytes disagreed with a sidecar,
        that sidecar goes too (with its record), so neither is stored."""
        mismatch = download.mismatch
        keeping = self.downloads.keeping
        if mismatch is None or mismatch[0].origin != ORIGIN or keeping is None:
            return
        side = sidecar_key(download.key, mismatch[0].algorithm)
        log.error("removing %s: its file did not match it", side)
        keeping.gone(side)
