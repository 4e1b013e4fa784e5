"""One value of the configuration, parsed and checked: durations, sizes,
source URLs, hosts, networks, plain text. Shared by the top-level keys
(``config.py``) and the ``[[repository]]`` tables (``repositoryconfig.py``).
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
import urllib.parse
from typing import Any

from pkgcache.settings import MIB, IPNetwork


class ConfigError(Exception):
    """A setting is missing, unknown, of the wrong type or out of range."""


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": MIB * MIB}
#: The largest size: the largest file offset (off_t), 8 EiB less one byte.
MAX_SIZE = 2**63 - 1

HOUR = 3600.0
DAY = 24 * HOUR
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"3600"`` (seconds) -> seconds.

    The result is always finite (``inf``, ``nan`` and a string of digits
    too long for a float are refused); its range is the caller's check.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30d, 12h or 3600")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    return seconds


def parse_size(value: int | str) -> int:
    """Parse ``4194304``, ``"4MiB"``, ``"4M"`` or ``"4 MB"`` (all binary units).

    The result is between 0 and ``MAX_SIZE`` (8 EiB): no file or file
    system is larger, and a bigger number is a typo.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size such as 4194304 or '4MiB'")
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > 19:  # more than 8 EiB has: never parse a huge number
            raise ValueError(f"{value!r} is larger than 8EiB")
        size = int(digits) * _SIZE_UNITS[(match.group(2) or "").upper()[:1]]
    if size < 0:
        raise ValueError("must not be negative")
    if size > MAX_SIZE:
        raise ValueError(f"{value!r} is larger than 8EiB")
    return size


def normalize_source(url: str) -> str:
    """Check that ``url`` is an http(s) URL and strip its trailing ``/``.

    Refused: any ``?`` or ``#`` (even a query or fragment left empty, such
    as ``http://mirror/x?``: a cache key appended after it would not be part
    of the path, so every file would be fetched from one URL; write ``%3F``
    or ``%23`` inside a user name or password), and spaces and control
    characters, which ``urlsplit`` silently strips or ignores but libcurl
    would be given.
    """
    if any(char.isspace() or is_control(char) for char in url):
        raise ValueError(f"{url!r} must not contain spaces or control characters")
    if "?" in url or "#" in url:
        raise ValueError(f"{url!r} must not have a query or fragment ('?' or '#')")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    return url.rstrip("/")


def parse_hosts(value: str | list[str]) -> tuple[str, ...]:
    """``"a,b"``, ``"a b"`` or ``["a", "b"]`` -> ``("a", "b")``."""
    items = value if isinstance(value, list) else re.split(r"[,\s]+", value)
    hosts = tuple(item.strip() for item in items if item.strip())
    if not hosts:
        raise ValueError("give at least one address")
    return hosts


def parse_network(value: str) -> IPNetwork:
    """``"192.168.0.0/16"``, ``"10.1.2.3"`` or ``"fd00::/8"``."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP network such as 10.0.0.0/8") from None


def is_control(char: str) -> bool:
    """A control character (Unicode category Cc: C0, DEL, C1)?"""
    return unicodedata.category(char) == "Cc"


def plain_text(text: str) -> str:
    """``text`` if it has no control character: a NUL in a path is an
    error from the OS, and a CR or LF in ``user_agent`` would start a new
    header line in every upstream request."""
    if any(is_control(char) for char in text):
        raise ValueError(f"{text!r} must not contain control characters")
    return text


def checked(key: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
