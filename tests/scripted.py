"""A transport that plays back scripted answers, for in-process tests of
the attempt, the upstream and a download with its readers.

``ScriptedTransport({url: [answer, ...]})`` answers each request to a URL
with the next answer scripted for it (a URL with none left: a refused
connection). An answer is a list of steps, played in order:

- ``Lines(...)``: header lines (the status line first); an empty line ends
  the block. ``head(status, headers)`` makes one block.
- ``Chunk(data)``: a body chunk.
- ``Turn()``: let the IOLoop run its callbacks (a download's batch).
- ``Gate(event)``: wait until the test sets ``event``.
- ``Fail(kind, message)``: the transfer ends with that error (a cut
  body, a refused connection, a stall).
- ``Result(status, headers)``: what the transport reports at the end, for
  an answer whose header lines come too late (tornado's order for small
  responses); by default, the last block played.

``should_abort`` is asked after each step, as libcurl asks the progress
callback: once it says True the transfer ends ABORTED. ``requests`` keeps
every request, for checks of order and headers. ``MemoryOutput`` is a
client connection that keeps what it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tornado.httputil import HTTPHeaders

from pkgcache.fetching.transport import (
    ErrorKind,
    TransportError,
    TransportRequest,
    TransportResult,
)


@dataclass(frozen=True)
class Lines:
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Chunk:
    data: bytes


@dataclass(frozen=True)
class Turn:
    pass


@dataclass(frozen=True)
class Gate:
    event: asyncio.Event


@dataclass(frozen=True)
class Fail:
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class Result:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


Step = Lines | Chunk | Turn | Gate | Fail | Result
STALL = Fail(ErrorKind.TIMEOUT, "stalled: no data for 3 seconds")
CUT = Fail(ErrorKind.FAILED, "Connection reset by peer")
REFUSED = Fail(ErrorKind.FAILED, "Failed to connect: Connection refused")


def head(status: int, headers: Mapping[str, str] | None = None) -> Lines:
    """One header block: the status line, the headers, the empty line."""
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return Lines((*lines, ""))


def chunks(body: bytes, size: int = 16384) -> list[Step]:
    """``body`` in chunks of ``size``, as libcurl hands them over."""
    return [Chunk(body[at : at + size]) for at in range(0, len(body), size)]


def ok(body: bytes, headers: Mapping[str, str] | None = None) -> list[Step]:
    """A 200 with its Content-Length, head first."""
    lengths = {"Content-Length": str(len(body)), **(headers or {})}
    return [head(200, lengths), *chunks(body)]


class ScriptedTransport:
    """``Transport`` that plays ``answers`` back (see the module docstring)."""

    def __init__(self, answers: Mapping[str, Iterable[list[Step]]]) -> None:
        self.answers = {url: list(steps) for url, steps in answers.items()}
        self.requests: list[TransportRequest] = []

    def asked(self, url: str) -> int:
        return sum(request.url == url for request in self.requests)

    async def fetch(self, request: TransportRequest) -> TransportResult:
        self.requests.append(request)
        queue = self.answers.get(request.url)
        if not queue:
            return TransportResult(error=TransportError(REFUSED.kind, REFUSED.message))
        status: int | None = None
        headers: HTTPHeaders | None = None
        block: list[str] = []
        for step in queue.pop(0):
            if isinstance(step, Lines):
                for line in step.lines:
                    request.on_header_line(line + "\r\n")
                    block.append(line)
                    if not line and block[0].startswith("HTTP/"):
                        status, headers = _parsed(block)
                        block = []
            elif isinstance(step, Chunk):
                if request.on_chunk is not None:
                    request.on_chunk(step.data)
            elif isinstance(step, Turn):
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            elif isinstance(step, Gate):
                await step.event.wait()
            elif isinstance(step, Result):
                status, headers = step.status, HTTPHeaders(step.headers)
            else:
                return TransportResult(error=TransportError(step.kind, step.message))
            if request.should_abort():
                error = TransportError(ErrorKind.ABORTED, "aborted by callback")
                return TransportResult(error=error)
        return TransportResult(status, headers)


def _parsed(block: list[str]) -> tuple[int, HTTPHeaders]:
    headers = HTTPHeaders()
    for line in block[1:]:
        if line:
            headers.parse_line(line)
    return int(block[0].split()[1]), headers


class MemoryOutput:
    """A client connection (``serving/output.ClientOutput``'s methods that
    a ``ClientStream`` uses) that keeps every byte it is sent."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.closed = False
        self.sent = 0
        self._queued: list[bytes] = []

    def queue(self, data: bytes) -> None:
        self._queued.append(bytes(data))

    def send_buffers(self, chunks: list[bytes]) -> int:
        size = 0
        for chunk in chunks:
            self.body += chunk
            size += len(chunk)
        self.sent += size
        return size

    def flush(self) -> asyncio.Future[None]:
        for data in self._queued:
            self.body += data
            self.sent += len(data)
        self._queued = []
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future
