"""The npm front: a registry's package documents and tarballs under a
repository's prefix.

- ``<prefix><name>``, ``<prefix>@scope/<name>`` (or ``@scope%2F<name>``):
  the package document, volatile; the abbreviated form (``Accept:
  application/vnd.npm.install-v1+json``, what ``npm install`` asks for)
  and the full one are separate variants. ``<prefix><name>/<version or
  tag>`` and ``<prefix>-/package/<name>/dist-tags`` are volatile
  documents too. Documents are stored under hidden names in the
  package's folder (``.document.json``, ``.install-v1.json``), which no
  request can name, beside the tarballs.
- ``<prefix><name>/-/<file>``: a tarball, immutable, fetched from the URL
  its document gave (when that is a configured host), then from the
  sources at the usual path.
- Anything else under ``<prefix>-/`` (search, ping): passed through, the
  query kept, never stored or joined.
Writes (publish, login, audit) are not GET or HEAD: the handler answers
them 405.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping

from pkgcache.digests.book import DigestBook
from pkgcache.fetching.upstream import ResponseHead, Route
from pkgcache.registries.links import Bases, ForeignHosts
from pkgcache.registries.negotiation import accepted
from pkgcache.registries.npmdocuments import (
    Learnt,
    TarballOrigins,
    Template,
    Templates,
    check_document,
)
from pkgcache.registries.npmstored import (
    CUT_IN_STEPS,
    SEARCH_ON_LOOP,
    cut_document,
    find_tarball_in,
)
from pkgcache.registries.targets import Document, Refusal, Resolution, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.store.cache import CacheStore, StoreError
from pkgcache.store.paths import CacheKey, RequestPath

log = logging.getLogger("pkgcache.registries")

INSTALL_TYPE = "application/vnd.npm.install-v1+json"
JSON_TYPE = "application/json"
_UPSTREAM_ACCEPT = {
    "install-v1": f"{INSTALL_TYPE}; q=1.0, {JSON_TYPE}; q=0.8, */*",
    "document": JSON_TYPE,
}


class NpmFront:
    """Resolves npm requests; remembers where tarballs live
    (``TarballOrigins``) across documents and reloads.

    A stored document is cut into a ``Template`` (its tarballs, their
    origins and digests) once per stored version, a step at a time
    (``_cut``): the answers to documents and the tarball misses that look
    in it share that one cut (``templates``, ``learnt``)."""

    def __init__(
        self, store: CacheStore, digests: DigestBook, foreign: ForeignHosts
    ) -> None:
        """``store``: where the stored documents are read (confined, as
        hits are); ``digests``: where the tarballs' digests go, for the
        downloads to check; ``foreign``: told of links to other hosts."""
        self.store = store
        self.digests = digests
        self.foreign = foreign
        self.origins: dict[str, TarballOrigins] = {}
        self.templates = Templates()
        self.learnt = Learnt()
        #: Stored documents being cut, by identity.
        self._cutting: dict[object, asyncio.Future[Template]] = {}

    def resolve(
        self,
        repository: Repository,
        path: RequestPath,
        headers: Mapping[str, str],
        query: str,
        public_base: Callable[[], str | None],
    ) -> Resolution:
        below = path.segments[len(repository.prefix) :]
        settings = repository.settings
        if not below:
            return Refusal(404, "no package named")
        if below[0] == "-":
            if len(below) >= 4 and below[1] == "package" and below[-1] == "dist-tags":
                name = _name(below[2:-1])
                if name is None:
                    return Refusal(404, "not a package name")
                upstream = f"/-/package/{_upstream_name(name)}/dist-tags"
                return self._document(
                    repository, path, upstream, name, "document", public_base
                )
            return Target(
                path.key if not path.folder else CacheKey((*path.segments, "-")),
                Policy.PASS,
                Route(settings.sources, CacheKey(below).url_path + query),
                private=True,
                upstream_type=True,
            )
        if path.folder:
            return Refusal(404, "directories are not served")
        scoped = below[0].startswith("@")
        name = _name(below[: 2 if scoped else 1])
        if name is None:
            return Refusal(404, "not a package name")
        rest = below[2 if scoped else 1 :]
        upstream_name = _upstream_name(name)
        if not rest:
            variant = "install-v1" if _wants_install(headers) else "document"
            return self._document(
                repository, path, f"/{upstream_name}", name, variant, public_base
            )
        if len(rest) == 1:
            version = urllib.parse.quote(rest[0], safe="")
            return self._document(
                repository,
                path,
                f"/{upstream_name}/{version}",
                name,
                "document",
                public_base,
            )
        if len(rest) == 2 and rest[0] == "-":
            key = path.key
            return Target(
                key,
                Policy.IMMUTABLE,
                lambda: self._tarball_route(repository, key, name),
            )
        return Refusal(404, "not a registry path")

    def _origins(self, repository: Repository) -> TarballOrigins:
        return self.origins.setdefault(repository.name, TarballOrigins())

    def _document(
        self,
        repository: Repository,
        path: RequestPath,
        upstream_path: str,
        name: str,
        variant: str,
        public_base: Callable[[], str | None],
    ) -> Resolution:
        base = public_base()
        if base is None:
            return Refusal(400, "no usable Host header to name the cache by")
        settings = repository.settings
        bases = self._bases(repository)
        prefix = repository.prefix

        async def finished(stored: bytes, identity: object | None) -> bytes:
            if identity is None:
                template = await cut_document(
                    lambda: stored, len(stored), name, prefix, bases
                )
                await self._learn(repository, template)
            else:
                identity = (settings.prefix, bases.urls, identity)
                template = await self._template(
                    repository, name, identity, lambda: stored, len(stored)
                )
            return template.join(base)

        def checked(body: bytes, _head: ResponseHead) -> bytes:
            return check_document(body)

        def content_type(upstream: str | None) -> str:
            if variant == "install-v1" and upstream and INSTALL_TYPE in upstream:
                return INSTALL_TYPE
            return JSON_TYPE

        return Target(
            CacheKey((*path.segments, f".{variant}.json")),
            Policy.VOLATILE,
            Route(settings.sources, upstream_path),
            Document(
                variant + "-" + base,
                (("Accept", _UPSTREAM_ACCEPT[variant]),),
                content_type,
                rewrite=checked,
                finish=finished,
            ),
        )

    def _template(
        self,
        repository: Repository,
        name: str,
        identity: object,
        read: Callable[[], bytes],
        size: int,
    ) -> asyncio.Future[Template]:
        """The template of the stored document ``identity``: remembered,
        being cut, or cut now (and its tarballs and digests learnt)."""
        found = self.templates.get(identity)
        if found is not None:
            done: asyncio.Future[Template] = asyncio.get_running_loop().create_future()
            done.set_result(found)
            return done
        cutting = self._cutting.get(identity)
        if cutting is None:
            cutting = asyncio.ensure_future(
                self._cut_and_learn(repository, name, identity, read, size)
            )
            self._cutting[identity] = cutting
            cutting.add_done_callback(functools.partial(_told, name))
        return cutting

    async def _cut_and_learn(
        self,
        repository: Repository,
        name: str,
        identity: object,
        read: Callable[[], bytes],
        size: int,
    ) -> Template:
        try:
            bases = self._bases(repository)
            template = await cut_document(read, size, name, repository.prefix, bases)
            await self._learn(repository, template)
            self.templates.add(identity, template)
            self.learnt.add(identity)
            log.info(
                "the stored document of %s told where %d tarballs live",
                name,
                len(template.tarballs),
            )
            return template
        finally:
            self._cutting.pop(identity, None)

    def _tarball_route(self, repository: Repository, key: CacheKey, name: str) -> Route:
        """The URL the document gave (a configured host), then the usual
        path on each source. A tarball asked for before its document was
        answered since the start (a client with its own copy of the
        document) is looked up in the stored document (``_stored_origin``).
        Worked out on a miss only (``Target.planned``)."""
        origins = self._origins(repository)
        url = origins.get(key)
        if url is None:
            url = self._stored_origin(repository, name, key)
        settings = repository.settings
        usual = "/" + "/".join(
            urllib.parse.quote(part, safe="@")
            for part in (*name.split("/"), "-", key.segments[-1])
        )
        targets: list[tuple[str, str]] = []
        if url is not None:
            found = self._bases(repository).base_and_path(url)
            if found is not None:
                targets.append((found[0], "/" + found[1]))
        targets += [(source, usual) for source in settings.sources]
        unique = list(dict.fromkeys(targets))
        return Route(
            tuple(source for source, _ in unique),
            usual,
            tuple(path for _, path in unique),
        )

    def _stored_origin(
        self, repository: Repository, name: str, key: CacheKey
    ) -> str | None:
        """Where the stored document of ``name`` says tarball ``key`` lives.

        A document learnt whole since the start (``learnt``) already told
        ``origins``: nothing is read. Otherwise it is cut (``_cut``) for
        the next requests, and this one looks for the tarball's name in it
        (``find_tarball_in``: a search of the bytes a chunk at a time, not
        a parse) when it is at most ``SEARCH_ON_LOOP`` bytes; the
        tarballs of a larger one are asked for at the usual path until its
        cut has told where they live. The IOLoop never parses a document
        however many tarballs it is asked for."""
        bases = self._bases(repository)
        store = self.store
        for variant in ("install-v1", "document"):
            document = CacheKey(
                (*repository.prefix, *name.split("/"), f".{variant}.json")
            )
            try:
                cached = store.lookup(document)
            except StoreError:
                continue
            if cached is None:
                continue
            result = cached.stat
            identity = (
                repository.settings.prefix,
                bases.urls,
                (cached.path, result.st_ino, result.st_size, result.st_mtime_ns),
            )
            if identity in self.learnt:
                return None
            if identity not in self._cutting:
                self._template(
                    repository,
                    name,
                    identity,
                    functools.partial(store.read_verified, cached),
                    CUT_IN_STEPS,
                )
            if result.st_size > SEARCH_ON_LOOP:
                return None
            try:
                fd = store.open_verified(cached)
                try:
                    found = find_tarball_in(
                        functools.partial(os.pread, fd),
                        result.st_size,
                        key,
                        name,
                        repository.prefix,
                        bases,
                    )
                finally:
                    os.close(fd)
            except (OSError, StoreError):
                return None
            if found is None:
                return None
            url, digests = found
            self._origins(repository).add(key, url)
            self.digests.add([(key, digests)])
            return url
        return None

    def _bases(self, repository: Repository) -> Bases:
        settings = repository.settings
        return Bases(
            tuple(dict.fromkeys((*settings.sources, *settings.file_sources))),
            settings.prefix,
            self.foreign,
        )

    async def _learn(self, repository: Repository, template: Template) -> None:
        """Where a document's tarballs live, and what they hash to: told
        ``_LEARN_BATCH`` tarballs an IOLoop turn, so a document of tens of
        thousands of versions never holds the loop long."""
        origins = self._origins(repository)
        count = len(template.tarballs)
        for start in range(0, count, _LEARN_BATCH):
            end = start + _LEARN_BATCH
            for key, url, digests in template.entries(start, end):
                origins.add(key, url)
                self.digests.add(((key, digests),))
            if end < count:
                await asyncio.sleep(0)


def _told(name: str, done: asyncio.Future[Template]) -> None:
    """Log a stored document that could not be read (culled meanwhile)."""
    error = None if done.cancelled() else done.exception()
    if error is not None:
        log.warning("cannot read the stored document of %s: %s", name, error)


#: Tarballs learnt an IOLoop turn (``NpmFront._learn``).
_LEARN_BATCH = 250


def _name(parts: tuple[str, ...]) -> str | None:
    """A package name from one segment, or a scope and one segment."""
    if len(parts) == 1 and not parts[0].startswith(("@", "_", "-")):
        return parts[0]
    scoped = len(parts) == 2 and parts[0].startswith("@") and len(parts[0]) > 1
    if scoped and not parts[1].startswith(("@", "_", ".", "-")):
        return f"{parts[0]}/{parts[1]}"
    return None


def _upstream_name(name: str) -> str:
    """A name as a registry's URL spells it: ``@scope%2Fname``."""
    return urllib.parse.quote(name, safe="@")


def _wants_install(headers: Mapping[str, str]) -> bool:
    return any(
        media == INSTALL_TYPE and weight > 0
        for media, weight in accepted(headers.get("Accept"))
    )
