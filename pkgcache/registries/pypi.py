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

from pkgcache.digests.book import DigestBook, Table, prepared
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
from pkgcache.settings import RepositorySettings
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
#: Stored pages remembered as learnt; forgotten all at once past this
#: (learning again is harmless).
LEARNT_REMEMBERED = 100_000

Entries = list[tuple[CacheKey, tuple[Digest, ...]]]

#: Where the pages of well-known indexes link their files.
FILE_HOSTS = {
    "pypi.org": "https://files.pythonhosted.org",
    "test.pypi.org": "https://test-files.pythonhosted.org",
}

_PROJECT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def normalize(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` are one ``-``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def belongs(project: str, filename: str) -> bool:
    """Is ``filename`` a distribution of ``project`` (normalized), or its
    ``.metadata``? A wheel's name is its first ``-`` part (PEP 427); any
    other file (an sdist, an egg, legacy names with ``-`` in them) must
    start with a name that normalizes to ``project``, then ``-`` and a
    version, which starts with a digit."""
    filename = filename.removesuffix(".metadata")
    if filename.endswith(".whl"):
        return normalize(filename.split("-", 1)[0]) == project
    at = filename.find("-")
    while at > 0:
        if normalize(filename[:at]) == project:
            return filename[at + 1 : at + 2].isdigit()
        at = filename.find("-", at + 1)
    return False


def vouched(project: str, prefix: str, entries: Entries) -> Entries:
    """The entries of ``project``'s page that it may vouch for: its own
    files only (a hostile index's page of one project must not set the
    digest of another's files), and, among the files an index keeps beside
    its pages, only those in its own folder."""
    top = len(tuple(part for part in prefix.split("/") if part))
    kept = []
    for key, digests in entries:
        below = key.segments[top:]
        if below[:1] == ("simple",) and below[1:2] != (project,):
            continue
        if belongs(project, key.segments[-1]):
            kept.append((key, digests))
    return kept


class PageDigests:
    """Learns into the ``DigestBook`` the digests project pages name: once
    when a page is stored (``rewritten``), and once per stored version
    after that (``learn``: after a restart the book starts empty). A page
    that could not be read is logged once and read again next time."""

    def __init__(self, book: DigestBook) -> None:
        self.book = book
        self._learnt: set[object] = set()
        self._reading: set[object] = set()
        self._failed: set[object] = set()

    def rewritten(
        self, project: str, prefix: str, page: bytes, kind: str | None
    ) -> Table:
        """In a thread: what a rewritten page vouches for, ready to merge."""
        return prepared(vouched(project, prefix, page_digests(page, kind, prefix)))

    def learn(
        self,
        project: str,
        prefix: str,
        read: Callable[[], bytes],
        identity: object,
    ) -> asyncio.Future[Table] | None:
        """A stored page answered: learn its digests unless this version's
        are known or being read; in a thread, not waited for (the future
        is done once they are in the book; None: nothing to learn)."""
        if identity in self._learnt or identity in self._reading:
            return None
        self._reading.add(identity)

        def digests() -> Table:
            stored = read()
            is_page_json = stored.lstrip()[:1] == b"{"
            recorded = "application/json" if is_page_json else "text/html"
            return self.rewritten(project, prefix, stored, recorded)

        def learnt(done: asyncio.Future[Table]) -> None:
            self._reading.discard(identity)
            error = done.exception()
            if error is not None:
                if identity not in self._failed:
                    if len(self._failed) >= LEARNT_REMEMBERED:
                        self._failed.clear()
                    self._failed.add(identity)
                    log.warning(
                        "cannot learn the digests of the stored page of %s: %s",
                        project,
                        error,
                    )
                return
            table = done.result()
            self.book.merge(table)
            self._failed.discard(identity)
            if len(self._learnt) >= LEARNT_REMEMBERED:
                self._learnt.clear()
            self._learnt.add(identity)
            log.info("the stored %s names the digests of %d files", project, len(table))

        running = IOLoop.current().run_in_executor(None, digests)
        running.add_done_callback(learnt)
        return running


def missing_file_sources(settings: RepositorySettings) -> str | None:
    """The start-up warning for a pypi repository without ``file_sources``,
    or None. Links to a host that is neither a source nor a file source
    stay as they are (``links.py``), so pip fetches those files from the
    host itself and the cache never sees them: a silent bypass, unless
    the index keeps its files under its own URL (devpi)."""
    if settings.kind != "pypi" or settings.file_sources:
        return None
    hosts = [urllib.parse.urlsplit(url).hostname or "" for url in settings.sources]
    known = [FILE_HOSTS[host] for host in hosts if host in FILE_HOSTS]
    where = f"repository {settings.name!r} (pypi) has no file_sources"
    if known:
        return (
            f"{where}: its pages link files on {known[0]}, which pip then "
            f"fetches directly, bypassing the cache; add "
            f'file_sources = ["{known[0]}"]'
        )
    return (
        f"{where}: if its pages link files on another host, pip fetches them "
        "there directly, bypassing the cache; add that host to file_sources"
    )


def resolve(
    repository: Repository,
    path: RequestPath,
    headers: Mapping[str, str],
    query: str,
    digests: PageDigests,
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
    pages: PageDigests,
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
        """In a thread: the page made host-free, and the digests it may
        vouch for handed to the IOLoop for the book."""
        content_type = head.headers.get("Content-Type")
        page = rewrite_page(body, content_type, head.url, bases)
        table = pages.rewritten(name, settings.prefix, page, content_type)
        loop.add_callback(pages.book.merge, table)
        return page

    def learn(read: Callable[[], bytes], identity: object) -> None:
        pages.learn(name, settings.prefix, read, identity)

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
