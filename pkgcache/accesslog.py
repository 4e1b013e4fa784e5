"""The access line: one per request, after it ends.

Format: ``CLIENT "METHOD TARGET" STATUS BYTES RESULT DURATION``, where
RESULT is hit, miss, joined, refused or error, and an unclean end (the
connection closed mid-body because the upstream failed) is marked
``unclean``. Fetch lines (one per source tried) come from ``upstream.py``.
"""

from __future__ import annotations

import logging

from tornado.web import RequestHandler

log = logging.getLogger("pkgcache.access")


def log_request(handler: RequestHandler) -> None:
    """tornado's ``log_function`` hook."""
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.WARNING
    if not log.isEnabledFor(level):
        return
    request = handler.request
    result = getattr(handler, "result", "-")
    if getattr(handler, "unclean", False):
        result += " unclean"
    log.log(
        level,
        '%s "%s %s" %d %d %s %.3fs',
        request.remote_ip,
        request.method,
        request.uri,
        status,
        getattr(handler, "bytes_sent", 0),
        result,
        request.request_time(),
    )
