"""How a request was answered: one word, the same in the access log, the
metrics' ``result`` label, the status page and the ``X-Package-Cache``
header."""

from __future__ import annotations

import enum


class Result(enum.StrEnum):
    #: The stored copy, asked of nobody.
    HIT = "hit"
    #: Fetched for this request.
    MISS = "miss"
    #: A download another request started.
    JOINED = "joined"
    #: The stored copy, after the upstream said it is current (304).
    REVALIDATED = "revalidated"
    #: A new version of a stored volatile file.
    REFRESHED = "refreshed"
    #: The stored copy, because no source answered in time.
    STALE = "stale"
    #: 404 remembered from a moment ago (``negative_for``).
    NEGATIVE = "negative"
    #: Streamed from upstream, never stored.
    PASS = "pass"
    REDIRECT = "redirect"
    #: The request itself was refused (a bad path, a method).
    REFUSED = "refused"
    #: The client is outside ``allow``.
    FORBIDDEN = "forbidden"
    ERROR = "error"
    #: One of the daemon's own pages (``/.pkgcache/``).
    STATUS = "status"


#: Results answered from the cache's own copy.
FROM_CACHE = frozenset((Result.HIT, Result.REVALIDATED, Result.STALE))
