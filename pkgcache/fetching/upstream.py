"""Ask the configured sources for one path, in order, through libcurl.

``Upstream.fetch`` tries each source until one answers 200, hands that
response's head to ``on_head`` and its body chunks to ``on_chunk``, and
reports how it ended. It knows the traps of tornado's curl client (see
``docs/architecture.md``): body chunks can reach us before the header lines
that precede them, the whole-transfer timeout must be off, tornado 6.6's
streamed body size limit must be raised (``max_file_size`` is enforced
here, per request, so a reload applies to the next download), and
redirects show every header block.
"""

from __future__ import annotations

import email.utils
import enum
import inspect
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPRequest
from tornado.httputil import HTTPHeaders

from pkgcache import __version__
from pkgcache.settings import LiveSettings, display_source
from pkgcache.store.paths import CacheKey
from pkgcache.tornado_internals import set_stream_queue

log = logging.getLogger("pkgcache.upstream")

#: libcurl errnos (see curl's libcurl-errors): 28 timeout or low-speed
#: abort, 42 aborted by our progress callback.
CURLE_OPERATION_TIMEDOUT = 28
CURLE_ABORTED_BY_CALLBACK = 42

#: libcurl's read size. Each read is handed on as one batch (download.py),
#: so larger reads mean fewer writes and sends per megabyte.
CURL_BUFFER_SIZE = 1024 * 1024
#: Body bytes tornado may queue for our streaming callback before it
#: pauses the transfer; libcurl reads several buffers per socket event.
STREAM_QUEUE_SIZE = 4 * 1024 * 1024
#: No body is too large for the curl client itself: ``max_file_size`` is
#: checked per request by ``_Attempt``.
_UNLIMITED = 1 << 62

#: CA bundles of common distributions, used when the Python build names none.
_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def system_ca_file() -> str | None:
    """The system CA store as one file.

    pycurl's wheels carry their own libcurl, whose built-in CA path need not
    exist here, so we always name the bundle ourselves.
    """
    candidates = (ssl.get_default_verify_paths().cafile, *_CA_BUNDLES)
    return next((path for path in candidates if path and os.path.isfile(path)), None)


class Outcome(enum.Enum):
    COMPLETE = "complete"
    #: A conditional request answered 304: the cached copy is current.
    NOT_MODIFIED = "not modified"
    NOT_FOUND = "not found"
    FAILED = "failed"
    TIMEOUT = "timeout"
    BROKEN = "broken mid-stream"


@dataclass(frozen=True)
class Route:
    """Where a path is fetched from: the sources in order, and the path to
    append to each (percent-encoded, starting with ``/``, and with a query
    for a pass-through). ``paths``, when given, holds one path per source
    instead (a registry's file at the URL its index gave, then at the
    usual path on the other sources)."""

    sources: tuple[str, ...]
    path: str
    paths: tuple[str, ...] = ()

    def targets(self) -> list[tuple[str, str]]:
        """Each source with the path to ask it for, in order."""
        paths = self.paths or (self.path,) * len(self.sources)
        return list(zip(self.sources, paths, strict=True))

    def ending_with(self, source: str) -> Route:
        """The same route with ``source`` asked last (it served a file
        that did not match its digest)."""
        return self._reordered(lambda this: this == source)

    def starting_with(self, source: str | None) -> Route:
        """The same route with ``source`` asked first (where a cached copy
        came from), then the others in order."""
        if source not in self.sources:
            return self
        return self._reordered(lambda this: this != source)

    def _reordered(self, later: Callable[[str], bool]) -> Route:
        """Sources for which ``later`` is false first, each keeping its
        path; the order is otherwise kept (a stable sort)."""
        order = sorted(range(len(self.sources)), key=lambda i: later(self.sources[i]))
        return Route(
            tuple(self.sources[i] for i in order),
            self.path,
            tuple(self.paths[i] for i in order) if self.paths else (),
        )


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


#: ``on_head`` returns False to refuse a response (its body is then dropped).
HeadCallback = Callable[[ResponseHead], bool]
ChunkCallback = Callable[[bytes], None]


class Upstream:
    """The sources and the curl client that reaches them."""

    def __init__(
        self,
        live: LiveSettings,
        on_attempt: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """``on_attempt(source, outcome, bytes)`` hears of every attempt.

        The pool size (``upstream_connections``) is fixed here, so it is a
        restart-only setting; every other setting is read per request.
        """
        self.live = live
        self.on_attempt = on_attempt
        options: dict[str, int] = {}
        if _takes_max_body_size():
            options["max_body_size"] = _UNLIMITED
        self.client = CurlAsyncHTTPClient(
            force_instance=True,
            max_clients=live.current.upstream_connections,
            **options,
        )
        self._system_ca_file = system_ca_file()

    @property
    def ca_file(self) -> str | None:
        return self.live.current.ca_file or self._system_ca_file

    async def fetch(
        self,
        key: CacheKey,
        method: str,
        on_head: HeadCallback,
        on_chunk: ChunkCallback | None = None,
        route: Route | None = None,
        conditional: dict[str, str] | None = None,
    ) -> FetchResult:
        """Try the sources of ``route`` in order until one gives a 200 for
        ``key`` (default: the top-level sources, the key's own path).

        A 4xx, a 5xx, a refused connection or a timeout before the response
        head moves on to the next source. Once ``on_head`` accepted a
        response, a failure ends the fetch (BROKEN): its bytes already went
        to clients. All sources saying 4xx is NOT_FOUND; otherwise the last
        failure decides between TIMEOUT and FAILED. With ``conditional``
        headers (If-None-Match, If-Modified-Since), a 304 ends the fetch
        as NOT_MODIFIED; other headers in it (a registry's Accept) are sent
        as they are.
        """
        route = route or Route(self.live.current.sources, key.url_path)
        all_not_found = True
        last = FetchResult(Outcome.FAILED, "no source configured")
        for source, path in route.targets():
            last = await self._try(
                source,
                key,
                method,
                on_head,
                on_chunk,
                conditional,
                what="revalidate" if _asks_if_changed(conditional) else "fetch",
                path=path,
            )
            if last.outcome in (Outcome.COMPLETE, Outcome.BROKEN, Outcome.NOT_MODIFIED):
                return last
            all_not_found = all_not_found and last.outcome is Outcome.NOT_FOUND
        if not all_not_found and last.outcome is Outcome.NOT_FOUND:
            last = FetchResult(Outcome.FAILED, "no source had it", last.source)
        return last

    async def resume(
        self,
        key: CacheKey,
        head: ResponseHead,
        offset: int,
        broken_source: str | None,
        on_chunk: ChunkCallback,
        same_source_first: bool = True,
        route: Route | None = None,
    ) -> FetchResult:
        """Continue a broken download at ``offset`` with a Range request.

        The source that broke is asked first (last when
        ``same_source_first`` is false: it broke again), then the others in
        order.
        ``If-Range`` carries the first response's ETag (or Last-Modified), so
        a changed file answers 200 and is refused. A 206 is spliced in only
        if its Content-Range continues the same total length and it carries
        every validator the first response had (ETag and Last-Modified, the
        same values): an upstream that ignores If-Range must not splice a
        new version onto the old one's first half. Returns COMPLETE,
        BROKEN (more bytes came, then it broke again: the caller may resume
        again) or FAILED (nobody could continue).
        """
        total = head.content_length
        validator = head.headers.get("ETag") or head.headers.get("Last-Modified")
        if total is None or not validator or offset >= total:
            return FetchResult(Outcome.FAILED, "cannot resume: no length or validator")
        expected_range = f"bytes {offset}-{total - 1}/{total}"

        def same_file(partial: ResponseHead) -> bool:
            for name in ("ETag", "Last-Modified"):
                first = head.headers.get(name)
                if first is not None and partial.headers.get(name) != first:
                    return False
            return partial.headers.get("Content-Range", "").strip() == expected_range

        route = route or Route(self.live.current.sources, key.url_path)
        targets = route.targets()
        sources = [source for source, _path in targets]
        if broken_source in sources:
            at = sources.index(broken_source) + (0 if same_source_first else 1)
            targets = targets[at:] + targets[:at]
        headers = {"Range": f"bytes={offset}-", "If-Range": validator}
        for source, path in targets:
            result = await self._try(
                source,
                key,
                "GET",
                same_file,
                on_chunk,
                headers,
                206,
                "resume",
                offset,
                path,
            )
            if result.outcome in (Outcome.COMPLETE, Outcome.BROKEN):
                return FetchResult(result.outcome, result.detail, source, head)
        return FetchResult(Outcome.FAILED, "no source could resume it", broken_source)

    async def _try(
        self,
        source: str,
        key: CacheKey,
        method: str,
        on_head: HeadCallback,
        on_chunk: ChunkCallback | None,
        headers: dict[str, str] | None = None,
        expected_status: int = 200,
        what: str = "fetch",
        offset: int = 0,
        path: str | None = None,
    ) -> FetchResult:
        """One attempt at one source, logged and counted. ``offset`` bytes
        of the file came before this attempt's body (a resume)."""
        limit = self.live.current.max_file_size
        attempt = _Attempt(
            self,
            source + (key.url_path if path is None else path),
            method,
            on_head,
            on_chunk,
            headers,
            expected_status,
            limit - offset if limit else None,
        )
        started = time.monotonic()
        result = await attempt.run()
        result = FetchResult(result.outcome, result.detail, source, result.head)
        log.log(
            logging.WARNING if what == "resume" else logging.INFO,
            "%s %s %s from %s%s: %s (%s, %d bytes, %.2fs)",
            what,
            method,
            key,
            display_source(source),
            f" at byte {headers['Range'][6:-1]}"
            if headers and "Range" in headers
            else "",
            result.outcome.value,
            result.detail,
            attempt.body_bytes,
            time.monotonic() - started,
        )
        if self.on_attempt is not None:
            self.on_attempt(
                display_source(source), result.outcome.name.lower(), attempt.body_bytes
            )
        return result


class _Attempt:
    """One request to one source URL.

    Header lines arrive through ``header_callback``; body chunks may arrive
    before them (tornado delivers the last buffered chunks synchronously
    when a transfer ends). Chunks are therefore held until the final
    header block is complete and accepted, then passed on in order.
    """

    def __init__(
        self,
        upstream: Upstream,
        url: str,
        method: str,
        on_head: HeadCallback,
        on_chunk: ChunkCallback | None,
        headers: dict[str, str] | None = None,
        expected_status: int = 200,
        body_limit: int | None = None,
    ) -> None:
        """``body_limit``: most body bytes this attempt may pass on; more
        aborts it (``max_file_size`` for bodies of unknown length)."""
        self.upstream = upstream
        self.body_limit = body_limit
        self._too_big = False
        #: Why a response that looked acceptable was refused as malformed.
        self._malformed = ""
        self._conditional = _asks_if_changed(headers)
        self._not_modified = False
        self.headers = {"Accept-Encoding": "identity", **(headers or {})}
        self.expected_status = expected_status
        self.url = url
        self.method = method
        self.on_head = on_head
        self.on_chunk = on_chunk
        self.body_bytes = 0
        self._final_url = url
        self._block: list[str] = []
        self._head: ResponseHead | None = None
        self._accepted: bool | None = None
        self._held: list[bytes] = []
        self._abort = False
        self._refused_by_cache = False
        self._stalled = False
        self._stall_timeout = 0.0
        self._last_count = 0
        self._last_progress = 0.0

    async def run(self) -> FetchResult:
        settings = self.upstream.live.current
        request = HTTPRequest(
            self.url,
            method=self.method,
            headers=self.headers,
            header_callback=self._header_line,
            streaming_callback=self._chunk if self.method == "GET" else None,
            prepare_curl_callback=self._prepare_curl,
            connect_timeout=settings.connect_timeout,
            request_timeout=0,
            follow_redirects=True,
            max_redirects=10,
            decompress_response=False,
            user_agent=settings.user_agent or f"package-cache/{__version__}",
            ca_certs=self.upstream.ca_file,
            validate_cert=True,
        )
        error: Exception | None = None
        try:
            response = await self.upstream.client.fetch(request, raise_error=False)
        except CurlError as curl_error:
            error = curl_error
        else:
            if self._accepted is None:
                self._decide(
                    ResponseHead(response.code, response.headers, self._final_url)
                )
            if response.error is not None and response.code >= 599:
                error = response.error
        return self._classify(error)

    def _classify(self, error: Exception | None) -> FetchResult:
        head = self._head
        errno = getattr(error, "errno", None)
        if self._not_modified and errno in (None, CURLE_ABORTED_BY_CALLBACK):
            return FetchResult(Outcome.NOT_MODIFIED, "HTTP 304", head=head)
        if self._malformed:
            return FetchResult(Outcome.FAILED, self._malformed, head=head)
        if self._too_big:
            return FetchResult(Outcome.FAILED, "larger than max_file_size", head=head)
        if self._stalled:
            error = CurlError(
                CURLE_OPERATION_TIMEDOUT,
                f"stalled: no data for {self._stall_timeout:g} seconds",
            )
        if self._accepted:
            if error is None:
                return FetchResult(Outcome.COMPLETE, f"HTTP {head.status}", head=head)
            return FetchResult(Outcome.BROKEN, str(error), head=head)
        errno = getattr(error, "errno", None)  # the stall check may replace it
        if head is not None and (error is None or errno == CURLE_ABORTED_BY_CALLBACK):
            if self._refused_by_cache:
                return FetchResult(Outcome.FAILED, "refused by the cache", head=head)
            if head.status == 200:
                return FetchResult(Outcome.NOT_FOUND, "a folder, not a file", head=head)
            if 400 <= head.status < 500:
                return FetchResult(Outcome.NOT_FOUND, f"HTTP {head.status}", head=head)
            return FetchResult(Outcome.FAILED, f"HTTP {head.status}", head=head)
        if errno == CURLE_OPERATION_TIMEDOUT:
            return FetchResult(Outcome.TIMEOUT, str(error))
        return FetchResult(Outcome.FAILED, str(error) if error else "no response")

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        settings = self.upstream.live.current
        curl.setopt(pycurl.BUFFERSIZE, CURL_BUFFER_SIZE)
        set_stream_queue(curl, STREAM_QUEUE_SIZE)
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, self._progress)
        # libcurl calls the progress callback only when it drives the
        # transfer; with a low-speed limit set it wakes the transfer every
        # second to check, so a silent upstream still reaches _progress.
        # LOW_SPEED_TIME itself is only the backstop (it averages).
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, int(settings.stall_timeout) + 2)
        self._stall_timeout = settings.stall_timeout
        self._last_progress = time.monotonic()

    def _progress(self, _dltotal: int, dlnow: int, _ultotal: int, _ulnow: int) -> int:
        """libcurl progress callback (about once a second, and per read).

        Returns non-zero to abort: for a refused response, or when no byte
        arrived for ``stall_timeout`` seconds. This is our stall detector
        rather than libcurl's LOW_SPEED_TIME, which averages over a window
        and so fires several seconds late after a burst.
        """
        if self._abort:
            return 1
        now = time.monotonic()
        if dlnow != self._last_count:
            self._last_count = dlnow
            self._last_progress = now
        elif now - self._last_progress > self._stall_timeout:
            self._stalled = True
            return 1
        return 0

    def _header_line(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):
            self._block = [line]
        elif line:
            self._block.append(line)
        elif self._block:
            self._end_of_block()

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
                log.debug("ignoring bad header line from %s: %r", self.url, line)
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
        asked_folder = urllib.parse.urlsplit(self.url).path.endswith("/")
        is_folder = urllib.parse.urlsplit(head.url).path.endswith("/")
        listing = is_folder and not asked_folder
        self._accepted = head.status == self.expected_status and not listing
        if head.status == 304 and self._conditional:
            self._not_modified = True
        if self._accepted and _framing_is_ambiguous(head):
            self._accepted = False
            self._malformed = "both Transfer-Encoding and Content-Length"
        if self._accepted and not self.on_head(head):
            self._accepted = False
            self._refused_by_cache = True
        held, self._held = self._held, []
        if not self._accepted:
            self._abort = True
            return
        for chunk in held:
            self._chunk(chunk)

    def _chunk(self, chunk: bytes) -> None:
        """The streaming callback, once per 16 KiB at most: kept short."""
        if self._accepted:
            self.body_bytes += len(chunk)
            if self.body_limit is not None and self.body_bytes > self.body_limit:
                self._accepted = False
                self._too_big = True
                self._abort = True
            elif self.on_chunk is not None:
                self.on_chunk(chunk)
        elif self._accepted is None:
            self._held.append(chunk)


def _asks_if_changed(headers: dict[str, str] | None) -> bool:
    """True for a conditional request (a 304 may answer it)."""
    return bool(headers) and any(
        name in headers for name in ("If-None-Match", "If-Modified-Since")
    )


def _takes_max_body_size() -> bool:
    """tornado 6.6 added ``max_body_size`` to the curl client and applies it
    to streamed bodies; 6.5 has neither the argument nor the limit."""
    parameters = inspect.signature(CurlAsyncHTTPClient.initialize).parameters
    return "max_body_size" in parameters


def _framing_is_ambiguous(head: ResponseHead) -> bool:
    """RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, and
    a message with both ought to be handled as an error. libcurl reads the
    chunked body to its end while the length promises another size: no
    length check could then be trusted."""
    return "Transfer-Encoding" in head.headers and "Content-Length" in head.headers
