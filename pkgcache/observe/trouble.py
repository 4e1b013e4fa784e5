"""The last things that went wrong, for the status page: upstream
failures, digest mismatches, refused requests and files no source had.
A ring buffer of ``KEPT`` entries; each field is cut to ``FIELD_LIMIT``
characters, so memory stays bounded whatever clients and upstreams send.
Credentials in a reason are hidden (``redact``, before it is cut, so no
half of a password is left); escaping for HTML is the page's job."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from pkgcache.observe.redact import redact

KEPT = 50
FIELD_LIMIT = 300

#: The kinds of trouble.
UPSTREAM = "upstream failure"
DIGEST = "digest mismatch"
REFUSED = "refused"
NOT_FOUND = "not found upstream"
FAILED = "failed request"


@dataclass(frozen=True)
class Incident:
    #: Epoch seconds.
    at: float
    kind: str
    path: str
    #: The client's address; "-" for what no one request caused (an
    #: upstream attempt, a download's digest).
    client: str
    #: What was said: the status, the source and its answer, the digests.
    detail: str

    def as_data(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "path": self.path,
            "client": self.client,
            "detail": self.detail,
        }


class Trouble:
    def __init__(self, kept: int = KEPT) -> None:
        self.incidents: deque[Incident] = deque(maxlen=kept)

    def add(self, at: float, kind: str, path: str, client: str, detail: str) -> None:
        self.incidents.append(
            Incident(
                at,
                kind,
                path[:FIELD_LIMIT],
                client[:FIELD_LIMIT],
                redact(detail)[: FIELD_LIMIT * 2],
            )
        )

    def latest(self) -> list[Incident]:
        """Newest first."""
        return list(reversed(self.incidents))
