"""The production transport: tornado's curl client, with the options the
cache relies on (see ``docs/architecture.md``, "What we rely on from
tornado and pycurl").

- ``request_timeout`` is 0 (off): a download may take hours; stalls are
  seen by the progress callback instead.
- ``max_body_size`` is unlimited where tornado has it (6.6 applies it to
  streamed bodies); ``max_file_size`` is the attempt's check, per request.
- libcurl reads 1 MiB at a time and tornado may queue 4 MiB of body.
- Redirects are followed; libcurl shows every header block to the header
  callback and drops redirect bodies.
- There is no cancel API: a transfer is aborted by returning non-zero
  from the progress callback (libcurl error 42).
- Bodies are stored as served: no decompression.
"""

from __future__ import annotations

import inspect
import os
import ssl
import time

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPRequest

from pkgcache.fetching.transport import (
    ErrorKind,
    TransportError,
    TransportRequest,
    TransportResult,
)
from pkgcache.tornado_internals import set_stream_queue

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
#: checked per request by the attempt.
_UNLIMITED = 1 << 62
MAX_REDIRECTS = 10

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


class CurlTransport:
    """``Transport`` over one pool of libcurl handles (``max_clients``: the
    pool size, fixed for the process's life; more requests wait in
    tornado's queue)."""

    def __init__(self, max_clients: int) -> None:
        options: dict[str, int] = {}
        if _takes_max_body_size():
            options["max_body_size"] = _UNLIMITED
        self.client = CurlAsyncHTTPClient(
            force_instance=True, max_clients=max_clients, **options
        )
        self._system_ca_file = system_ca_file()

    async def fetch(self, request: TransportRequest) -> TransportResult:
        transfer = _Transfer(request)
        http_request = HTTPRequest(
            request.url,
            method=request.method,
            headers=dict(request.headers),
            header_callback=request.on_header_line,
            streaming_callback=request.on_chunk,
            prepare_curl_callback=transfer.prepare,
            connect_timeout=request.connect_timeout,
            request_timeout=0,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            decompress_response=False,
            user_agent=request.user_agent,
            ca_certs=request.ca_file or self._system_ca_file,
            validate_cert=True,
        )
        try:
            response = await self.client.fetch(http_request, raise_error=False)
        except CurlError as curl_error:
            return TransportResult(error=transfer.error(curl_error))
        if response.error is not None and response.code >= 599:
            return TransportResult(error=transfer.error(response.error))
        return TransportResult(response.code, response.headers)


class _Transfer:
    """The per-transfer state of the progress callback: stall detection
    and the attempt's abort."""

    def __init__(self, request: TransportRequest) -> None:
        self.request = request
        self.stalled = False
        self._last_count = 0
        self._last_progress = 0.0

    def prepare(self, curl: pycurl.Curl) -> None:
        curl.setopt(pycurl.BUFFERSIZE, CURL_BUFFER_SIZE)
        set_stream_queue(curl, STREAM_QUEUE_SIZE)
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, self._progress)
        # libcurl calls the progress callback only when it drives the
        # transfer; with a low-speed limit set it wakes the transfer every
        # second to check, so a silent upstream still reaches _progress.
        # LOW_SPEED_TIME itself is only the backstop (it averages).
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, int(self.request.stall_timeout) + 2)
        self._last_progress = time.monotonic()

    def _progress(self, _dltotal: int, dlnow: int, _ultotal: int, _ulnow: int) -> int:
        """libcurl progress callback (about once a second, and per read).

        Returns non-zero to abort: for a refused response, or when no byte
        arrived for ``stall_timeout`` seconds. This is our stall detector
        rather than libcurl's LOW_SPEED_TIME, which averages over a window
        and so fires several seconds late after a burst.
        """
        if self.request.should_abort():
            return 1
        now = time.monotonic()
        if dlnow != self._last_count:
            self._last_count = dlnow
            self._last_progress = now
        elif now - self._last_progress > self.request.stall_timeout:
            self.stalled = True
            return 1
        return 0

    def error(self, error: BaseException) -> TransportError:
        """libcurl's error, named by what it means to the attempt."""
        if self.stalled:
            timeout = self.request.stall_timeout
            return TransportError(
                ErrorKind.TIMEOUT, f"stalled: no data for {timeout:g} seconds"
            )
        errno = getattr(error, "errno", None)
        if errno == CURLE_ABORTED_BY_CALLBACK:
            return TransportError(ErrorKind.ABORTED, str(error))
        if errno == CURLE_OPERATION_TIMEDOUT:
            return TransportError(ErrorKind.TIMEOUT, str(error))
        return TransportError(ErrorKind.FAILED, str(error))


def _takes_max_body_size() -> bool:
    """tornado 6.6 added ``max_body_size`` to the curl client and applies it
    to streamed bodies; 6.5 has neither the argument nor the limit."""
    parameters = inspect.signature(CurlAsyncHTTPClient.initialize).parameters
    return "max_body_size" in parameters
