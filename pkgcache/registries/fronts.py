"""The fronts of the registry kinds, by kind: the one place the handler
and the small-hit path ask what a registry path is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from pkgcache.clock import Clock
from pkgcache.digests.book import DigestBook
from pkgcache.digests.values import Digest
from pkgcache.fetching.inflight import Downloads
from pkgcache.registries import maven, pypi
from pkgcache.registries.cargo import CargoFront
from pkgcache.registries.golang import GoFront
from pkgcache.registries.links import ForeignHosts
from pkgcache.registries.npm import NpmFront
from pkgcache.registries.oci import OciFront, namespaced
from pkgcache.registries.ocitokens import TokenFetch
from pkgcache.registries.targets import Resolution
from pkgcache.repositories.rules import PathRules, Repository
from pkgcache.store.cache import CacheStore
from pkgcache.store.paths import CacheKey, RequestPath

KINDS = ("pypi", "npm", "go", "cargo", "oci")
#: Raised while learning a file's digests (``Fronts.digests_first``).
DigestsUnavailable = maven.SidecarUnavailable


class Fronts:
    def __init__(
        self,
        store: CacheStore,
        digests: DigestBook,
        downloads: Downloads | None = None,
        clock: Clock | None = None,
        rules_for: Callable[[CacheKey], PathRules | None] | None = None,
        fetch_token: TokenFetch | None = None,
    ) -> None:
        """``store``: the cache, where npm reads its stored documents to
        find where their tarballs live; ``digests``: filled with what the
        indexes say their files hash to. The hosts whose links are left
        as they are (``ForeignHosts``) are logged once per daemon, by
        every front. ``downloads``: where Go fetches lookup records
        through the cache (None: Go modules go unchecked), and cargo the
        index file a ``.crate`` needs; ``clock``: when cargo fetched it;
        with ``rules_for`` (the repositories'), where Maven fetches
        sidecars first (without them, none is). ``fetch_token``: a small
        GET, for the tokens a container registry asks for (``oci``)."""
        self.foreign = ForeignHosts()
        self.npm = NpmFront(store, digests, self.foreign)
        self.pypi_pages = pypi.PageDigests(digests)
        self.digests = digests
        self.oci = OciFront(fetch_token)
        self.go = GoFront(store, downloads)
        self.cargo = CargoFront(store, digests, downloads, clock)
        self.maven = (
            maven.MavenSidecars(store, downloads, rules_for)
            if downloads is not None and rules_for is not None
            else None
        )

    def digests_first(
        self, rules: PathRules, key: CacheKey
    ) -> Awaitable[tuple[Digest, ...]] | None:
        """What to await before a miss of ``key`` starts its download: the
        digests it must match, learnt from other files fetched first (a
        Maven artifact's sidecars). None when its kind learns none that
        way. The awaitable raises ``DigestsUnavailable`` when they may
        exist but could not be fetched."""
        if self.maven is not None and maven.is_checked(rules):
            return self.maven.expected(key)
        return None

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
            return pypi.resolve(
                repository, path, headers, query, self.pypi_pages, self.foreign
            )
        if kind == "npm":
            return self.npm.resolve(repository, path, headers, query, public_base)
        if kind == "go":
            return self.go.resolve(repository, path)
        if kind == "cargo":
            return self.cargo.resolve(repository, path, public_base)
        if kind == "oci":
            return self.oci.resolve(repository, path, headers, query)
        return None

    def namespaced(
        self, path: RequestPath, query: str, repositories: Iterable[Repository]
    ) -> RequestPath:
        """``path`` with the registry repository it is for put in, when
        the client leaves it out (``oci.namespaced``)."""
        return namespaced(path, query, repositories)
