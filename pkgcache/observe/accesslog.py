"""The access line: one per request, after it ends.

Format: ``CLIENT "METHOD TARGET" STATUS BYTES RESULT DURATION``, where
RESULT is hit, miss, joined, refused or error, and an unclean end (the
connection closed mid-body because the upstream failed) is marked
``unclean``. Fetch lines (one per source tried) come from ``upstream.py``.
"""

from __future__ import annotations

import logging

from tornado.httputil import HTTPServerRequest
from tornado.web import RequestHandler

log = logging.getLogger("pkgcache.access")


def log_request(handler: RequestHandler) -> None:
    """tornado's ``log_function`` hook."""
    result = getattr(handler, "result", "-")
    if getattr(handler, "unclean", False):
        result += " unclean"
    log_access(
        handler.request,
        handler.get_status(),
        getattr(handler, "bytes_sent", 0),
        result,
    )


def log_access(request: HTTPServerRequest, status: int, sent: int, result: str) -> None:
    """Write the access line of one answered request."""
    level = logging.INFO if status < 500 else logging.WARNING
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        '%s "%s %s" %d %d %s %.3fs',
        request.remote_ip,
        request.method,
        request.uri,
        status,
        sent,
        result,
        request.request_time(),
    )
