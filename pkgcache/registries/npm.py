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

import logging
import urllib.parse
from collections.abc import Callable, Mapping

from tornado.ioloop import IOLoop

from pkgcache.digests.book import DigestBook
from pkgcache.fetching.upstream import Route
from pkgcache.registries.links import Bases
from pkgcache.registries.negotiation import accepted
from pkgcache.registries.npmdocuments import (
    TarballOrigins,
    Template,
    Templates,
)
from pkgcache.registries.targets import Document, Refusal, Resolution, Target
from pkgcache.repositories.rules import Policy, Repository
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
    (``TarballOrigins``) across documents and reloads."""

    def __init__(
        self, read_stored: Callable[[CacheKey], bytes | None], digests: DigestBook
    ) -> None:
        """``read_stored(key)``: a stored document's bytes (the store's
        confined read), or None; ``digests``: where the tarballs' digests
        go, for the downloads to check."""
        self.read_stored = read_stored
        self.digests = digests
        self.origins: dict[str, TarballOrigins] = {}
        self.templates = Templates()

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
            return Target(
                path.key,
                Policy.IMMUTABLE,
                self._tarball_route(repository, path.key, name),
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
        bases = _bases(repository)
        prefix = repository.prefix

        async def finished(stored: bytes, identity: object | None) -> bytes:
            if identity is not None:
                identity = (settings.prefix, bases.urls, identity)
            template = self.templates.get(identity) if identity else None
            if template is None:
                template = await _cut(stored, name, prefix, bases)
                self._learn(repository, template)
                if identity is not None:
                    self.templates.add(identity, template)
            return template.join(base)

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
                finish=finished,
            ),
        )

    def _tarball_route(self, repository: Repository, key: CacheKey, name: str) -> Route:
        """The URL the document gave (a configured host), then the usual
        path on each source. A tarball asked for before any document was
        answered since the start (a client with its own copy of the
        document) is looked up in the stored documents first."""
        origins = self._origins(repository)
        if origins.get(key) is None:
            self._learn_from_stored(repository, name)
        settings = repository.settings
        usual = "/" + "/".join(
            urllib.parse.quote(part, safe="@")
            for part in (*name.split("/"), "-", key.segments[-1])
        )
        targets: list[tuple[str, str]] = []
        url = origins.get(key)
        if url is not None:
            found = _bases(repository).base_and_path(url)
            if found is not None:
                targets.append((found[0], "/" + found[1]))
        targets += [(source, usual) for source in settings.sources]
        unique = list(dict.fromkeys(targets))
        return Route(
            tuple(source for source, _ in unique),
            usual,
            tuple(path for _, path in unique),
        )

    def _learn_from_stored(self, repository: Repository, name: str) -> None:
        for variant in ("install-v1", "document"):
            key = CacheKey((*repository.prefix, *name.split("/"), f".{variant}.json"))
            stored = self.read_stored(key)
            if stored is not None:
                bases = _bases(repository)
                self._learn(
                    repository, Template(stored, name, repository.prefix, bases)
                )
                return

    def _learn(self, repository: Repository, template: Template) -> None:
        """Where a document's tarballs live, and what they hash to."""
        origins = self._origins(repository)
        for key, url in template.origins:
            origins.add(key, url)
        self.digests.add(template.digests)


#: Documents larger than this are cut in a thread: a big one (thousands of
#: versions) takes a good part of a second.
_CUT_INLINE = 256 * 1024


async def _cut(
    stored: bytes, name: str, prefix: tuple[str, ...], bases: Bases
) -> Template:
    if len(stored) <= _CUT_INLINE:
        return Template(stored, name, prefix, bases)
    loop = IOLoop.current()
    return await loop.run_in_executor(None, Template, stored, name, prefix, bases)


def _bases(repository: Repository) -> Bases:
    settings = repository.settings
    return Bases(
        tuple(dict.fromkeys((*settings.sources, *settings.file_sources))),
        settings.prefix,
    )


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
