"""The base of our request handlers: how every answer of ours looks."""

from __future__ import annotations

from typing import Any

from tornado.httputil import responses
from tornado.web import HTTPError, RequestHandler

from pkgcache.observe.accesslog import escape
from pkgcache.observe.redact import redact
from pkgcache.observe.results import Result
from pkgcache.serving import headers


class UpstreamFailure(HTTPError):
    """No source gave the file, and this client has had no byte of it: the
    status the upstreams' answers call for, what they said (in the body,
    credentials hidden) and, for a busy upstream, its ``Retry-After``."""

    def __init__(self, status: int, detail: str, retry_after: str | None) -> None:
        super().__init__(status, "%s", detail)
        self.detail = detail
        self.retry_after = retry_after


class Explained(HTTPError):
    """An error whose body says more than its status line: ``detail`` (for
    clients that may be told, such as which prefixes the cache serves)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, "%s", detail)
        self.detail = detail


class PageHandler(RequestHandler):
    """The base of our handlers: the ``Server`` header on every answer,
    errors as one plain-text line (never a traceback or HTML), no ETag of
    tornado's own, and the byte count of pages (``page_bytes``) for the
    access log."""

    page_bytes = 0
    #: How the request was answered, for the access log and the metrics.
    result: Result = Result.ERROR

    def set_default_headers(self) -> None:
        self.set_header("Server", headers.SERVER)

    def compute_etag(self) -> str | None:
        """Files carry their own validators; pages and errors none."""
        return None

    def data_received(self, chunk: bytes) -> None:
        """A GET or HEAD body means nothing here: dropped as it streams in
        (``stream_request_body``), so memory stays bounded whatever a client
        sends."""

    def finish_page(self, text: str) -> None:
        """Finish with a small generated body, counting its bytes."""
        data = text.encode()
        if self.request.method != "HEAD":
            self.page_bytes += len(data)
        self.finish(data)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:
            # tornado closes the connection after a 405 without reading its
            # body: say so, or a client reuses the socket and fails.
            self.set_header("Allow", "GET, HEAD")
            self.set_header("Connection", "close")
        reason = getattr(error, "reason", None) or responses.get(status_code, "")
        line = f"{status_code} {reason}"
        if isinstance(error, UpstreamFailure):
            line += f": upstream: {escape(redact(error.detail))}"
            if error.retry_after:
                self.set_header("Retry-After", error.retry_after)
        elif isinstance(error, Explained):
            line += f": {escape(error.detail)}"
        shaped = self.error_document(status_code, line)
        if shaped is not None:
            self.set_header("Content-Type", "application/json")
            self.finish_page(shaped + "\n")
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish_page(line + "\n")

    def error_document(self, status: int, line: str) -> str | None:
        """Override to answer an error as a JSON document (a registry
        API's shape) instead of ``line``; None: the plain line."""
        return None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """HTTP errors are in the access log already; log only real faults."""
        if not isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)

    @property
    def bytes_sent(self) -> int:
        """Body bytes of this answer that left, for the access log."""
        return self.page_bytes
