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


class Outcome(enum.Enum):
    COMPLETE = "complete"
    #: A conditional request answered 304: the cached copy is current.
    NOT_MODIFIED = "not modified"
    NOT_FOUND = "not found"
    FAILED = "failed"
    TIMEOUT = "timeout"
    BROKEN = "broken mid-stream"


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


@dataclass(frozen=True)
class FetchResult:
    outcome: Outcome
    detail: str
    source: str | None = None
    head: ResponseHead | None = None

    @property
    def client_status(self) -> int:
        """What a client that got no bytes yet should be answered."""
        return {
            Outcome.COMPLETE: 200,
            Outcome.NOT_FOUND: 404,
            Outcome.TIMEOUT: 504,
        }.get(self.outcome, 502)
