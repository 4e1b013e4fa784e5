"""The cut between an upstream attempt and the network.

An attempt (``attempt.py``) hands a ``TransportRequest`` to a
``Transport`` and hears back through the request's callbacks: every header
line as it comes (every header block of a redirect chain and 1xx ones
included), every body chunk as it comes, in whatever order the transport
delivers them. The transport asks ``should_abort`` as it goes and stops the
transfer when it says True. The awaited ``TransportResult`` says how the
transfer ended.

Production uses ``curltransport.CurlTransport``; tests play a script back
(``tests/scripted.py``), so the attempt, the upstream and a download with
its readers run in one process.

Notes for implementers: deliver header lines with their line ending or
without (the attempt strips it), an empty line ending each block; chunks
may come before the header lines that precede them (tornado's curl client
does that for small responses), and the attempt copes; never raise for a
network failure, return it as ``TransportError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tornado.httputil import HTTPHeaders


class ErrorKind(enum.Enum):
    #: No byte for ``stall_timeout``, or the connection took too long.
    TIMEOUT = "timeout"
    #: ``should_abort`` said True: the attempt refused the response.
    ABORTED = "aborted"
    #: Anything else: refused connection, reset, bad TLS, cut body...
    FAILED = "failed"


@dataclass(frozen=True)
class TransportError:
    kind: ErrorKind
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TransportRequest:
    """One request to one URL, and where its response goes."""

    url: str
    method: str
    headers: Mapping[str, str]
    #: Each response header line, status lines included.
    on_header_line: Callable[[str], None]
    #: Each body chunk; None: the body is not wanted (HEAD).
    on_chunk: Callable[[bytes], None] | None
    #: Asked while the transfer runs; True stops it (ABORTED).
    should_abort: Callable[[], bool]
    connect_timeout: float = 30.0
    #: Seconds without a body byte after which the transfer is a TIMEOUT.
    stall_timeout: float = 30.0
    user_agent: str = ""
    #: CA bundle to verify TLS with; None: the system's.
    ca_file: str | None = None


@dataclass(frozen=True)
class TransportResult:
    """How a transfer ended. ``status`` and ``headers`` are the final
    response's as the transport saw them at the end (None when no response
    came): a fallback for header lines still on their way."""

    status: int | None = None
    headers: HTTPHeaders | None = None
    error: TransportError | None = None


class Transport(Protocol):
    """Sends one request and streams its response to the callbacks."""

    async def fetch(self, request: TransportRequest) -> TransportResult:
        """Run the request to its end; never raises for network failures."""
        ...  # pragma: no cover
