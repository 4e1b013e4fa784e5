"""What a registry front makes of a request: a ``Target`` to serve, a
``Redirect``, a ``Refusal`` or a ``Reply`` of the cache's own."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pkgcache.fetching.finishing import Step
from pkgcache.fetching.upstream import ResponseHead, Route
from pkgcache.repositories.rules import Policy
from pkgcache.store.meta import Validators
from pkgcache.store.paths import CacheKey


@dataclass(frozen=True)
class Document:
    """How a registry document (a page that changes) is fetched, kept and
    answered. Each variant (JSON or HTML, full or abbreviated) is its own
    stored file; ``variant`` names it in the ETag."""

    variant: str
    #: Request headers for the sources (the variant's Accept).
    request_headers: tuple[tuple[str, str], ...]
    #: The answer's Content-Type, from the one the upstream gave (recorded
    #: with the validators; None when unknown).
    content_type: Callable[[str | None], str]
    #: Applied once, off the IOLoop, before the page is stored (PyPI).
    rewrite: Callable[[bytes, ResponseHead], bytes] | None = None
    #: Applied to the stored bytes for each answer (npm: the tarball URLs
    #: need the URL this client reaches the cache at); its second argument
    #: names the stored file (inode, size, mtime), so work done for one
    #: answer can serve the next; None for a body that was not stored.
    finish: Callable[[bytes, object | None], Awaitable[bytes]] | None = None
    #: Told of each stored copy answered, with a way to read it (in a
    #: thread) and its identity: PyPI learns the digests its page names.
    learn: Callable[[Callable[[], bytes], object], None] | None = None
    #: Headers each answer carries, from the stored copy's record (None
    #: when the body was not stored): a registry manifest's
    #: ``Docker-Content-Digest``.
    headers_of: Callable[[Validators | None], dict[str, str]] | None = None
    #: Revalidated by a HEAD comparing ``Docker-Content-Digest``, not a
    #: conditional GET (``FetchPlan.revalidate_by_head``).
    revalidate_by_head: bool = False
    #: Where a copy is linked once stored, by the digest it was verified
    #: against (``<folder>/<algorithm>/<hex>``): a manifest fetched by tag
    #: is then there by digest too, even with the upstream gone.
    digest_folder: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """Where a request's file or document is stored (``key``), under which
    policy, and where it is fetched from. ``private``: a pass-through that
    no other client may join (its query makes it another request).

    ``planned`` is the ``Route``, or a function that works it out the
    first time ``route`` is read: a hit never reads it, so what the route
    costs (npm: looking in the stored documents for where a tarball
    lives) is paid on a miss only, and a cached file is served whatever
    its index holds."""

    key: CacheKey
    policy: Policy
    planned: Route | Callable[[], Route]
    document: Document | None = None
    private: bool = False
    #: Answer with the upstream's Content-Type (a passed-through page).
    upstream_type: bool = False
    #: Finishing steps of the front's own after the digest check (Go:
    #: the ``h1:`` of a module zip against its checksum database).
    checks: tuple[Step, ...] = ()
    #: Awaited on a miss before the download starts (neither stored nor
    #: in flight): cargo reads or fetches the index file that names a
    #: ``.crate``'s cksum. A ``Refusal`` is the answer instead.
    before: Callable[[], Awaitable[Refusal | None]] | None = None

    @functools.cached_property
    def route(self) -> Route:
        """Where the file is fetched from (``planned``, worked out once)."""
        planned = self.planned
        return planned if isinstance(planned, Route) else planned()


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


@dataclass(frozen=True)
class Reply:
    """A small answer the cache gives itself, asking no source (Go's
    ``sumdb/<name>/supported``)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


Resolution = Target | Redirect | Refusal | Reply
