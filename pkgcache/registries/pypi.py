"""The PyPI front: a simple repository (PEP 503 HTML, PEP 691 JSON) and
its files, under a repository's prefix.

- ``<prefix>simple/``: the root listing, passed through (PyPI's is tens of
  megabytes that pip and uv never read; storing it would only cost disk).
- ``<prefix>simple/<project>/``: a volatile page, one stored variant per
  format (``index.json``, ``index.html`` in the project's folder), chosen
  by the client's Accept; its file links rewritten once, when stored
  (``pypipages.py``). A name that is not normalized (PEP 503) or lacks the
  trailing slash is redirected.
- Anything else: an immutable file (a wheel, an sdist, its ``.metadata``),
  fetched from the file_sources and then the sources; files an index keeps
  beside its pages (``simple/<project>/<file>``) from the sources first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping

from tornado.ioloop import IOLoop

from pkgcache.digests.book import DigestBook
from pkgcache.digests.values import Digest
from pkgcache.fetching.upstream import ResponseHead, Route
from pkgcache.registries.links import Bases, ForeignHosts
from pkgcache.registries.negotiation import choose
from pkgcache.registries.pypipages import (
    HTML_TYPE,
    JSON_TYPE,
    LEGACY_HTML_TYPE,
    is_json,
    page_digests,
    rewrite_page,
)
from pkgcache.registries.targets import Document, Redirect, Refusal, Resolution, Target
from pkgcache.repositories.rules import Policy, Repository
from pkgcache.store.paths import CacheKey, RequestPath

log = logging.getLogger("pkgcache.registries")

#: Server preference among equally weighted types: HTML first, as PyPI
#: answers a bare ``*/*`` (curl); pip and uv weigh JSON highest.
_OFFERED = (LEGACY_HTML_TYPE, HTML_TYPE, JSON_TYPE)
#: What each stored variant asks the sources for.
_UPSTREAM_ACCEPT = {
    "json": JSON_TYPE,
    "html": f"{HTML_TYPE}, {LEGACY_HTML_TYPE};q=0.5",
}
#: Stored pages whose digests were learnt since the start; forgotten all
#: at once past the bound (learning again is harmless).
_LEARNT: set[object] = set()
_LEARNT_LIMIT = 100_000


def _remember_learnt(identity: object) -> None:
    if len(_LEARNT) >= _LEARNT_LIMIT:
        _LEARNT.clear()
    _LEARNT.add(identity)


_PROJECT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def normalize(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` are one ``-``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(
    repository: Repository,
    path: RequestPath,
    headers: Mapping[str, str],
    query: str,
    digests: DigestBook,
    foreign: ForeignHosts | None = None,
) -> Resolution:
    prefix = repository.settings.prefix
    below = path.segments[len(repository.prefix) :]
    sources = repository.settings.sources
    file_sources = repository.settings.file_sources
    if below == ("simple",):
        if not path.folder:
            return Redirect(prefix + "simple/" + query)
        return _root(repository, headers)
    if len(below) == 2 and below[0] == "simple":
        project = below[1]
        if not _PROJECT.fullmatch(project):
            return Refusal(404, "not a project name")
        name = normalize(project)
        if name != project or not path.folder:
            quoted = urllib.parse.quote(name)
            return Redirect(f"{prefix}simple/{quoted}/{query}")
        return _page(repository, name, headers, digests, foreign)
    if path.folder or not below:
        return Refusal(404, "directories are not served")
    key = path.key
    upstream_path = CacheKey(below).url_path
    if below[0] == "simple":
        if len(below) != 3 or below[2].startswith("index."):
            return Refusal(404, "not a file of the index")
        order = (*sources, *file_sources)
    else:
        order = (*file_sources, *sources)
    return Target(
        key, Policy.IMMUTABLE, Route(tuple(dict.fromkeys(order)), upstream_path)
    )


def _variant(headers: Mapping[str, str]) -> str | None:
    """The negotiated media type; no Accept at all is the legacy HTML."""
    accept = headers.get("Accept")
    if accept is None:
        return LEGACY_HTML_TYPE
    return choose(accept, _OFFERED)


def _root(repository: Repository, headers: Mapping[str, str]) -> Resolution:
    media = _variant(headers)
    if media is None:
        return Refusal(406, "the index answers JSON or HTML only")
    variant = "json" if media == JSON_TYPE else "html"
    return Target(
        CacheKey((*repository.prefix, "simple", f".root.{variant}")),
        Policy.PASS,
        Route(repository.settings.sources, "/simple/"),
        Document(
            variant, (("Accept", _UPSTREAM_ACCEPT[variant]),), lambda t: t or media
        ),
        upstream_type=True,
    )


def _page(
    repository: Repository,
    name: str,
    headers: Mapping[str, str],
    book: DigestBook,
    foreign: ForeignHosts | None,
) -> Resolution:
    media = _variant(headers)
    if media is None:
        return Refusal(406, "the index answers JSON or HTML only")
    variant = "json" if media == JSON_TYPE else "html"
    settings = repository.settings
    bases = Bases(
        tuple(dict.fromkeys((*settings.file_sources, *settings.sources))),
        settings.prefix,
        foreign,
    )

    loop = IOLoop.current()

    def rewrite(body: bytes, head: ResponseHead) -> bytes:
        """In a thread: the page made host-free, and its digests handed to
        the IOLoop for the book."""
        content_type = head.headers.get("Content-Type")
        page = rewrite_page(body, content_type, head.url, bases)
        loop.add_callback(book.add, page_digests(page, content_type, settings.prefix))
        return page

    def learn(read: Callable[[], bytes], identity: object) -> None:
        """A stored page answered: learn its digests once per stored
        version (after a restart the book starts empty), in a thread, not
        waited for."""
        if identity in _LEARNT:
            return
        _remember_learnt(identity)

        def digests() -> list[tuple[CacheKey, tuple[Digest, ...]]]:
            stored = read()
            is_page_json = stored.lstrip()[:1] == b"{"
            recorded = "application/json" if is_page_json else "text/html"
            return page_digests(stored, recorded, settings.prefix)

        def learnt(
            done: asyncio.Future[list[tuple[CacheKey, tuple[Digest, ...]]]],
        ) -> None:
            if done.exception() is None:
                entries = done.result()
                book.add(entries)
                log.info(
                    "the stored %s names the digests of %d files", name, len(entries)
                )

        loop.run_in_executor(None, digests).add_done_callback(learnt)

    def content_type(upstream: str | None) -> str:
        # A page in the other format (an index without PEP 691 answers
        # HTML to everything) is answered as what it is.
        if is_json(upstream):
            return JSON_TYPE
        return media if media != JSON_TYPE else LEGACY_HTML_TYPE

    return Target(
        CacheKey((*repository.prefix, "simple", name, f"index.{variant}")),
        Policy.VOLATILE,
        Route(settings.sources, f"/simple/{urllib.parse.quote(name)}/"),
        Document(
            variant,
            (("Accept", _UPSTREAM_ACCEPT[variant]),),
            content_type,
            rewrite=rewrite,
            learn=learn,
        ),
    )
