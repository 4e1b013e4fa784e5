"""What to answer a GET or HEAD of a file: status, byte range, length headers.

Pure (standard library only, no I/O), so one set of rules serves hits from
disk, small hits from memory and downloads still in flight, and it is the
project's only Range parser. The order is RFC 9110 section 13.2.2's:
If-Match, else If-Unmodified-Since (412); If-None-Match, else
If-Modified-Since (304); then If-Range and Range (206 or 416). A malformed
header is ignored as the RFC asks, never an error: what a client sends can
change the answer only to another of the five statuses.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

# RFC 9110 section 8.8.3: an entity-tag is an optionally weak quoted string;
# its opaque part may hold commas, so a list is read by tags, not by commas.
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')

# RFC 9110 section 14.1.2, one range-spec only. Leading zeros are dropped and
# at most 32 digits kept: longer numerals fail to match and the Range is
# ignored, which is how section 14.1.2's "prevent parsing errors due to integer
# conversion overflows" is met without int() on a 4300-digit string.
_BYTE_RANGE = re.compile(
    r"[ \t]*bytes[ \t]*=[ \t]*"
    r"(?:0*([0-9]{1,32}))?[ \t]*-[ \t]*(?:0*([0-9]{1,32}))?[ \t]*",
    re.IGNORECASE | re.ASCII,
)

# RFC 9110 section 5.6.7: every HTTP-date starts with a day name, and its one
# comma, if any, follows it. More commas mean a list of dates, which sections
# 13.1.3 and 13.1.4 say to ignore (tornado joins repeated headers with ",").
_DATE_SHAPE = re.compile(r"[A-Za-z]+,?[^,]*", re.ASCII)
_LONGEST_DATE = 64


@dataclass(frozen=True, slots=True)
class Representation:
    """What we know of the file: ``size`` None while a download without
    Content-Length is in flight; ``etag`` a strong ETag as sent, quotes
    included; ``last_modified`` in POSIX seconds."""

    size: int | None
    etag: str | None
    last_modified: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The decision: send bytes ``start`` to ``end`` (exclusive; None: to the
    end of a body of unknown length) with ``status`` and ``headers`` (only
    Content-Length and Content-Range; validators and type are the caller's).
    ``send_body`` is False for HEAD, 304, 412 and 416."""

    status: int
    start: int
    end: int | None
    headers: tuple[tuple[str, str], ...]
    send_body: bool


_NOT_MODIFIED = Answer(304, 0, 0, (), False)
_PRECONDITION_FAILED = Answer(412, 0, 0, (("Content-Length", "0"),), False)


def decide(
    method: str, request_headers: Mapping[str, str], representation: Representation
) -> Answer:
    """Answer a ``method`` ("GET" or "HEAD") of ``representation``.

    ``request_headers`` need only ``.get(canonical name)``: a tornado
    ``HTTPHeaders`` (case-insensitive) or a plain dict. Preconditions are
    evaluated in RFC 9110 section 13.2.2's order. Range counts on GET only
    (section 14.2) and once the size is known; a request with none of these
    headers costs five lookups and a cached Answer.
    """
    get = request_headers.get
    if_match = get("If-Match")
    if_unmodified_since = get("If-Unmodified-Since")
    if_none_match = get("If-None-Match")
    if_modified_since = get("If-Modified-Since")
    range_ = get("Range")
    etag = representation.etag
    last_modified = representation.last_modified

    if if_match is not None:
        if not _matches_strongly(if_match, etag):
            return _PRECONDITION_FAILED
    elif if_unmodified_since is not None and last_modified is not None:
        date = _http_date(if_unmodified_since)
        if date is not None and last_modified > date:
            return _PRECONDITION_FAILED

    if if_none_match is not None:
        if _matches_weakly(if_none_match, etag):
            return _NOT_MODIFIED
    elif if_modified_since is not None and last_modified is not None:
        date = _http_date(if_modified_since)
        if date is not None and last_modified <= date:
            return _NOT_MODIFIED

    size = representation.size
    if range_ is None or method != "GET" or size is None:
        return _whole(size, method != "HEAD")
    if_range = get("If-Range")
    if if_range is not None and not _if_range_holds(if_range, representation):
        return _whole(size, True)
    return _byte_range(range_, size)


def _matches_strongly(field: str, etag: str | None) -> bool:
    """If-Match (RFC 9110 section 13.1.1): ``*`` or a listed tag equal to ours
    by strong comparison (section 8.8.3.2), so weak tags never match."""
    if field.strip() == "*":
        return True
    if etag is None or etag.startswith("W/"):
        return False
    return etag in _ENTITY_TAG.findall(field)


def _matches_weakly(field: str, etag: str | None) -> bool:
    """If-None-Match (RFC 9110 section 13.1.2): ``*`` or a listed tag equal to
    ours by weak comparison (section 8.8.3.2: ``W/`` ignored on both sides)."""
    if field.strip() == "*":
        return True
    if etag is None:
        return False
    opaque = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == opaque for tag in _ENTITY_TAG.findall(field))


def _if_range_holds(field: str, representation: Representation) -> bool:
    """If-Range (RFC 9110 section 13.1.5): an entity-tag must match strongly,
    a date must equal Last-Modified exactly; anything else (a bad date, no
    validator to compare) fails, and the whole file is sent."""
    field = field.strip()
    if field.startswith(('"', "W/")):
        return not field.startswith("W/") and field == representation.etag
    date = _http_date(field)
    return date is not None and date == representation.last_modified


def _byte_range(field: str, size: int) -> Answer:
    """Range on a GET of known ``size`` (RFC 9110 sections 14.1.2 and 14.2).

    An invalid or multi-range field is ignored (200, whole); a valid but
    unsatisfiable one is 416. A range covering the whole file is a 200:
    clients take it alike and caches downstream can keep it. On an empty
    file a non-zero suffix-range is satisfiable (section 14.1.2), so it is a
    200 with no body, not a 416.
    """
    match = _BYTE_RANGE.fullmatch(field)
    if match is None:
        return _whole(size, True)
    first, last = match.groups()
    if first is None:
        if last is None:
            return _whole(size, True)
        suffix = int(last)
        if suffix == 0:
            return _unsatisfiable(size)
        start, end = max(size - suffix, 0), size
    else:
        start = int(first)
        if last is not None and int(last) < start:
            return _whole(size, True)
        if start >= size:
            return _unsatisfiable(size)
        end = size if last is None else min(int(last) + 1, size)
    if start == 0 and end == size:
        return _whole(size, True)
    return Answer(
        206,
        start,
        end,
        (
            ("Content-Range", f"bytes {start}-{end - 1}/{size}"),
            ("Content-Length", str(end - start)),
        ),
        True,
    )


@functools.lru_cache(maxsize=4096)
def _whole(size: int | None, send_body: bool) -> Answer:
    """The 200 of the whole body; cached, as it answers nearly every request.
    Content-Length is the size even for HEAD (RFC 9110 section 8.6)."""
    headers = () if size is None else (("Content-Length", str(size)),)
    return Answer(200, 0, size, headers, send_body)


def _unsatisfiable(size: int) -> Answer:
    """416 with the current length (RFC 9110 sections 14.4 and 15.5.17)."""
    return Answer(
        416,
        0,
        0,
        (("Content-Range", f"bytes */{size}"), ("Content-Length", "0")),
        False,
    )


def _http_date(field: str) -> int | None:
    """An HTTP-date (RFC 9110 section 5.6.7) as POSIX seconds, or None when
    it is not one; too long a field is not, and is kept out of the cache."""
    if len(field) > _LONGEST_DATE:
        return None
    return _parse_http_date(field.strip())


@functools.lru_cache(maxsize=256)
def _parse_http_date(field: str) -> int | None:
    """Cached because clients repeat dates (their copy's Last-Modified).
    A date without a zone is taken as UTC, as HTTP-dates are."""
    if _DATE_SHAPE.fullmatch(field) is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(field)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return int(parsed.timestamp())
    except (TypeError, ValueError, OverflowError):
        return None
