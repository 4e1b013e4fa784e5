"""What one fetch ended with: the outcome, the final response's head, and
the status a client that saw no byte yet is answered.

Pure data, shared by the attempt, the upstream, the download and the
handler; nothing here talks to the network.
"""

from __future__ import annotations

import email.utils
import enum
from dataclasses import dataclass

from tornado.httputil import HTTPHeaders

from pkgcache.store.meta import Validators


class Outcome(enum.Enum):
    COMPLETE = "complete"
    #: A conditional request answered 304: the cached copy is current.
    NOT_MODIFIED = "not modified"
    #: 404 or 410: the file is gone (remembered for ``negative_for``; a
    #: revalidated copy is removed).
    NOT_FOUND = "not found"
    #: Any other refusal or error: the next source is asked; nothing is
    #: remembered and a stale copy stays.
    FAILED = "failed"
    TIMEOUT = "timeout"
    BROKEN = "broken mid-stream"
    #: Larger than ``max_file_size``: final, no other source is asked for
    #: the same file.
    TOO_LARGE = "too large"


@dataclass(frozen=True)
class ResponseHead:
    """The final response's status and headers, and the URL that gave them."""

    status: int
    headers: HTTPHeaders
    url: str

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length", "")
        return int(value) if value.isdigit() else None

    @property
    def last_modified(self) -> float | None:
        """Last-Modified as a POSIX timestamp, or None when absent or bad."""
        value = self.headers.get("Last-Modified")
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None

    def record(
        self, source: str | None, confirmed: float, verified: str | None
    ) -> Validators:
        """What is recorded beside the file this response gave: what to
        revalidate it with, when it was confirmed, its type, and the
        digest it matched (``algorithm:hex``)."""
        return Validators(
            self.headers.get("ETag"),
            self.headers.get("Last-Modified"),
            source,
            confirmed,
            self.headers.get("Content-Type"),
            verified,
            self.headers.get("Docker-Content-Digest"),
        )


#: Upstream statuses that mean "busy, ask later": a client is answered 503
#: (with the upstream's Retry-After, where the handler passes it on).
_BUSY = (429, 503)


@dataclass(frozen=True)
class FetchResult:
    outcome: Outcome
    detail: str
    source: str | None = None
    head: ResponseHead | None = None

    @property
    def client_status(self) -> int:
        """What a client that got no bytes yet should be answered: 404 only
        for a file gone everywhere, 503 when the last source was busy (429
        or 503), 504 for a timeout, 502 for anything else that failed."""
        if self.outcome is Outcome.FAILED and self.upstream_busy:
            return 503
        return {
            Outcome.COMPLETE: 200,
            Outcome.NOT_FOUND: 404,
            Outcome.TIMEOUT: 504,
        }.get(self.outcome, 502)

    @property
    def upstream_busy(self) -> bool:
        return self.head is not None and self.head.status in _BUSY

    @property
    def retry_after(self) -> str | None:
        """The busy upstream's Retry-After, as it sent it (a number of
        seconds or an HTTP date), or None."""
        if not self.upstream_busy or self.head is None:
            return None
        value = self.head.headers.get("Retry-After", "").strip()
        return value if value and value.isprintable() else None
