"""The access line: one per request, after it ends.

Format: ``CLIENT "METHOD TARGET" STATUS BYTES RESULT DURATION``, where
RESULT is hit, miss, joined, refused or error, and an unclean end (the
connection closed mid-body because the upstream failed) is marked
``unclean``; a file that matched a known digest is marked
``verified=ALGORITHM``. Fetch lines (one per source tried) come from ``upstream.py``.

What the client sent is written escaped (``escape``): an access line never
holds a raw control character, whatever the request line held.
"""

from __future__ import annotations

import logging
import re

from tornado.httputil import HTTPServerRequest
from tornado.web import RequestHandler

log = logging.getLogger("pkgcache.access")

#: What ``escape`` rewrites: everything but printable ASCII, and ``"`` and
#: ``\`` (which would make the quoted field or an escape ambiguous), as
#: nginx's access log does. tornado decodes the request line as latin-1,
#: so each character of a target or method is one byte from the wire.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def escape(text: str) -> str:
    """``text`` with every character ``_UNSAFE`` names written as ``\\xNN``
    (``\\uNNNN`` or ``\\UNNNNNNNN`` above U+00FF): the result is printable
    ASCII, and a latin-1 request line can be read back byte for byte."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def log_request(handler: RequestHandler) -> None:
    """tornado's ``log_function`` hook."""
    result = getattr(handler, "result", "-")
    if getattr(handler, "unclean", False):
        result += " unclean"
    verified = getattr(handler, "verified", None)
    if verified:
        result += f" verified={verified}"
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
        escape(request.remote_ip or "-"),
        escape(request.method or "-"),
        escape(request.uri or "-"),
        status,
        sent,
        result,
        request.request_time(),
    )
