"""Keep credentials out of the log, whoever writes the line.

Our own lines show sources through ``settings.display_source``; tornado's
curl client logs request URLs and, at debug level, libcurl's request
headers (``Authorization: Basic ...`` is a password in base64). This filter
sits on the log handler, so it sees only lines that are written.
"""

from __future__ import annotations

import logging
import re

_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*)(:[^/@\s]*)?@")
_AUTHORIZATION = re.compile(r"((?:Proxy-)?Authorization:\s*)\S.*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with URL passwords and Authorization values replaced."""
    if "@" in text:
        text = _USERINFO.sub(_hide_userinfo, text)
    if "uthorization" in text:
        text = _AUTHORIZATION.sub(r"\1***", text)
    return text


def _hide_userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match.group(1), match.group(2), match.group(3)
    return f"{scheme}{user}:***@" if password else f"{scheme}***@"


class RedactCredentials(logging.Filter):
    """Rewrites each record's message through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
