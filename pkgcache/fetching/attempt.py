"""One request to one source URL, and what its answer means.

An ``Attempt`` parses the header lines its transport hands it into header
blocks (the last final one counts: 1xx and redirect blocks are skipped),
decides whether the final response is the one asked for, holds body chunks
that arrive before that decision (tornado's curl client delivers the last
chunks of a small response before its header lines), passes the rest on,
and classifies how it ended (``FetchResult``):

- the expected status (200, or 206 for a resume), accepted by ``on_head``:
  COMPLETE, or BROKEN when the body broke off;
- 304 to a conditional request: NOT_MODIFIED, unless it names another
  strong ETag than the one asked about (RFC 9111 section 4.3.4: it then
  confirms nothing; FAILED, and the upstream asks again unconditionally);
- 404 and 410: NOT_FOUND, the only answers that mean "gone";
- every other status (403, 408, 429, 5xx...), a refused connection or a
  response refused as malformed: FAILED, the next source is asked;
- no byte for ``stall_timeout`` before the head: TIMEOUT;
- longer than the size limit (by Content-Length, or by counting): TOO_LARGE.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tornado.httputil import HTTPHeaders

from pkgcache.fetching.auth import Authorizer
from pkgcache.fetching.responses import FetchResult, Outcome, ResponseHead
from pkgcache.fetching.transport import (
    ErrorKind,
    Transport,
    TransportError,
    TransportRequest,
)

log = logging.getLogger("pkgcache.upstream")

#: ``on_head`` returns False to refuse a response (its body is then dropped).
HeadCallback = Callable[[ResponseHead], bool]
ChunkCallback = Callable[[bytes], None]

#: Request headers that make a request conditional (a 304 may answer it).
CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since")
#: Statuses that say the file is not there: remembered, and a stored copy
#: of it goes. Anything else that is not the file is a failure of the source.
GONE = (404, 410)


def _accept_any(_head: ResponseHead) -> bool:
    return True


@dataclass(frozen=True)
class AttemptSpec:
    """What one attempt asks one source for, and where the answer goes."""

    source: str
    path: str
    method: str = "GET"
    on_head: HeadCallback = _accept_any
    on_chunk: ChunkCallback | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: 200, or 206 for a resume.
    expected_status: int = 200
    #: For the log line: fetch, revalidate or resume.
    what: str = "fetch"
    #: Bytes of the file that came before this attempt's body (a resume).
    offset: int = 0
    #: Asked for headers first, and told of a 401's challenge (``auth.py``).
    auth: Authorizer | None = None

    @property
    def url(self) -> str:
        return self.source + self.path

    @property
    def conditional(self) -> bool:
        return asks_if_changed(self.headers)

    def unconditional(self) -> AttemptSpec:
        """The same attempt without its "changed since?" headers."""
        headers = {
            name: value
            for name, value in self.headers.items()
            if name not in CONDITIONAL_HEADERS
        }
        return AttemptSpec(
            self.source,
            self.path,
            self.method,
            self.on_head,
            self.on_chunk,
            headers,
            self.expected_status,
            "fetch",
            self.offset,
            self.auth,
        )

    def authorized(self) -> AttemptSpec:
        """The same attempt with what its authorizer holds for the URL now."""
        if self.auth is None:
            return self
        extra = self.auth.headers(self.url)
        return dataclasses.replace(self, headers={**self.headers, **extra})


@dataclass(frozen=True)
class Limits:
    """The settings an attempt reads, taken once when it starts."""

    connect_timeout: float
    stall_timeout: float
    user_agent: str
    ca_file: str | None
    #: Most body bytes this attempt may pass on; None: no limit.
    body_limit: int | None


class Attempt:
    """One request to one source URL; ``run`` once."""

    def __init__(
        self,
        spec: AttemptSpec,
        limits: Limits,
        on_first_byte: Callable[[float], None] | None = None,
    ) -> None:
        """``on_first_byte(seconds)`` hears, once, how long after the start
        the answer's first line came (any status; not when none came)."""
        self.spec = spec
        self.limits = limits
        self._on_first_byte = on_first_byte
        self.body_bytes = 0
        self._final_url = spec.url
        self._block: list[str] = []
        self._head: ResponseHead | None = None
        #: None until the final head is decided on.
        self._accepted: bool | None = None
        self._held: list[bytes] = []
        self._abort = False
        #: Set once the transport returned: late callbacks are ignored.
        self._finished = False
        #: Why a response that looked acceptable was refused.
        self._malformed = ""
        self._too_big = False
        self._refused_by_cache = False
        #: Monotonic seconds when the request went out and when the first
        #: header line came back (None: nothing came).
        self.started = 0.0
        self.first_line: float | None = None

    @property
    def first_byte_seconds(self) -> float | None:
        """Time to first byte: from the request to its first header line."""
        return None if self.first_line is None else self.first_line - self.started

    async def run(self, transport: Transport) -> FetchResult:
        spec, limits = self.spec, self.limits
        request = TransportRequest(
            url=spec.url,
            method=spec.method,
            headers={"Accept-Encoding": "identity", **spec.headers},
            on_header_line=self._header_line,
            on_chunk=self._chunk if spec.method == "GET" else None,
            should_abort=lambda: self._abort,
            connect_timeout=limits.connect_timeout,
            stall_timeout=limits.stall_timeout,
            user_agent=limits.user_agent,
            ca_file=limits.ca_file,
        )
        self.started = time.monotonic()
        result = await transport.fetch(request)
        if result.status:
            self._first_byte()
        if result.error is None and self._accepted is None and result.status:
            # Header lines still on their way: the transport's copy decides.
            headers = result.headers if result.headers is not None else HTTPHeaders()
            self._decide(ResponseHead(result.status, headers, self._final_url))
        self._finished = True
        return FetchResult(*self._classify(result.error), spec.source, self._head)

    def _classify(self, error: TransportError | None) -> tuple[Outcome, str]:
        head = self._head
        answered = error is None or error.kind is ErrorKind.ABORTED
        if self._too_big:
            size = head.content_length if head is not None else None
            known = f"{size} bytes, " if size is not None else ""
            return Outcome.TOO_LARGE, f"{known}larger than max_file_size"
        if self._malformed:
            return Outcome.FAILED, self._malformed
        if self._accepted:
            assert head is not None
            if error is None:
                return Outcome.COMPLETE, f"HTTP {head.status}"
            return Outcome.BROKEN, str(error)
        if head is not None and answered:
            return self._refusal(head)
        if error is not None and error.kind is ErrorKind.TIMEOUT:
            return Outcome.TIMEOUT, str(error)
        return Outcome.FAILED, str(error) if error else "no response"

    def _refusal(self, head: ResponseHead) -> tuple[Outcome, str]:
        """A complete head that was not accepted: what it means."""
        if head.status == 304 and self.spec.conditional:
            if _confirms(self.spec.headers, head):
                return Outcome.NOT_MODIFIED, "HTTP 304"
            return Outcome.FAILED, "HTTP 304 with another ETag than asked about"
        if self._refused_by_cache:
            return Outcome.FAILED, "refused by the cache"
        if head.status == self.spec.expected_status:  # not a file
            return Outcome.NOT_FOUND, "a folder, not a file"
        if head.status in GONE:
            return Outcome.NOT_FOUND, f"HTTP {head.status}"
        return Outcome.FAILED, f"HTTP {head.status}"

    def _header_line(self, line: str) -> None:
        if self._finished:
            return
        self._first_byte()
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):
            self._block = [line]
        elif line:
            self._block.append(line)
        elif self._block:
            self._end_of_block()

    def _first_byte(self) -> None:
        """The answer began (its first header line, or the transport's
        status when lines were not told): noted once, and told once."""
        if self.first_line is None:
            self.first_line = time.monotonic()
        if self._on_first_byte is not None:
            heard, self._on_first_byte = self._on_first_byte, None
            heard(self.first_line - self.started)

    def _end_of_block(self) -> None:
        try:
            status = int(self._block[0].split()[1])
        except (IndexError, ValueError):
            status = 0
        headers = HTTPHeaders()
        for line in self._block[1:]:
            try:
                headers.parse_line(line)
            except Exception:
                log.debug("ignoring bad header line from %s: %r", self.spec.url, line)
        self._block = []
        location = headers.get("Location")
        if 100 <= status < 200:
            return
        if 300 <= status < 400 and location:
            self._final_url = urllib.parse.urljoin(self._final_url, location)
            return
        self._decide(ResponseHead(status, headers, self._final_url))

    def _decide(self, head: ResponseHead) -> None:
        """Accept or refuse the final response, then release held chunks."""
        if self._accepted is not None:
            return
        self._head = head
        # A file redirected to a folder is a mirror's listing, not the file;
        # a registry page is a folder on purpose.
        asked_folder = urllib.parse.urlsplit(self.spec.url).path.endswith("/")
        is_folder = urllib.parse.urlsplit(head.url).path.endswith("/")
        listing = is_folder and not asked_folder
        accepted = head.status == self.spec.expected_status and not listing
        limit = self.limits.body_limit
        if accepted and _framing_is_ambiguous(head):
            accepted = False
            self._malformed = "both Transfer-Encoding and Content-Length"
        if accepted and limit is not None and (head.content_length or 0) > limit:
            accepted = False
            self._too_big = True
        if accepted and not self.spec.on_head(head):
            accepted = False
            self._refused_by_cache = True
        self._accepted = accepted
        held, self._held = self._held, []
        if not accepted:
            self._abort = True
            return
        for chunk in held:
            self._chunk(chunk)

    def _chunk(self, chunk: bytes) -> None:
        """The streaming callback, once per 16 KiB at most: kept short."""
        if self._finished:
            return
        if self._accepted:
            self.body_bytes += len(chunk)
            limit = self.limits.body_limit
            if limit is not None and self.body_bytes > limit:
                self._accepted = False
                self._too_big = True
                self._abort = True
            elif self.spec.on_chunk is not None:
                self.spec.on_chunk(chunk)
        elif self._accepted is None:
            self._held.append(chunk)


def asks_if_changed(headers: Mapping[str, str]) -> bool:
    """True for a conditional request (a 304 may answer it)."""
    return any(name in headers for name in CONDITIONAL_HEADERS)


def _confirms(sent: Mapping[str, str], head: ResponseHead) -> bool:
    """Whether a 304 confirms the copy asked about: not when it carries a
    strong ETag that is none of those sent in If-None-Match (RFC 9111
    section 4.3.4: a strong validator identifies the representation)."""
    etag = head.headers.get("ETag", "").strip()
    asked = sent.get("If-None-Match")
    if not etag or etag.startswith("W/") or asked is None:
        return True
    return etag in (tag.strip() for tag in asked.split(","))


def _framing_is_ambiguous(head: ResponseHead) -> bool:
    """RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, and
    a message with both ought to be handled as an error. libcurl reads the
    chunked body to its end while the length promises another size: no
    length check could then be trusted."""
    return "Transfer-Encoding" in head.headers and "Content-Length" in head.headers
