"""What a response says about its file: validators, type, and the
``Representation`` that ``decisions.py`` decides from.

Shared by the general hit path (``handler.py``), the small-hit fast path
(``smallhits.py``) and downloads, so a file looks the same whichever
answers it, and a miss's ETag matches the later hits'. Formatted once
where possible.
"""

from __future__ import annotations

import email.utils
import functools
import mimetypes
import os
import time
import zlib

from pkgcache import __version__
from pkgcache.serving.decisions import Representation

#: Every answer names us the way tornado's handlers do.
SERVER = f"package-cache/{__version__}"


def content_type_for(path: str) -> str:
    """Guess a Content-Type from the file name.

    A compressed file (``.tar.gz``, ``.tar.xz``, ``.bz2``) is
    ``application/octet-stream``: its compression is part of the file, and
    a ``charset=gzip`` or Content-Encoding would make clients unpack it.
    Only the last two suffixes matter, and their answer is remembered.
    """
    name = path.rsplit("/", 1)[-1]
    return _content_type_for_suffixes(".".join(name.split(".")[-2:]).lower())


@functools.lru_cache(maxsize=1024)
def _content_type_for_suffixes(suffixes: str) -> str:
    mime_type, encoding = mimetypes.guess_type("file." + suffixes, strict=False)
    if encoding is not None or mime_type is None:
        return "application/octet-stream"
    return mime_type


@functools.lru_cache(maxsize=1024)
def http_date(timestamp: int) -> str:
    """An HTTP date (Last-Modified, Date); few distinct values are asked."""
    return email.utils.formatdate(timestamp, usegmt=True)


def now_http_date() -> str:
    """The Date header: formatted once per second, as nginx does."""
    return http_date(int(time.time()))


def etag_for(size: int, mtime: float) -> str:
    """A strong-enough validator from size and mtime, the same on miss and hit."""
    return f'"{size:x}-{int(mtime):x}"'


def file_headers(path: str, result: os.stat_result) -> dict[str, str]:
    """The validators and type of the cached file at ``path``."""
    return {
        "Accept-Ranges": "bytes",
        "Etag": etag_for(result.st_size, result.st_mtime),
        "Last-Modified": http_date(int(result.st_mtime)),
        "Content-Type": content_type_for(path),
    }


def cached_file(
    path: str, result: os.stat_result
) -> tuple[Representation, dict[str, str]]:
    """A complete cached file: what to decide from and the headers to send."""
    headers = file_headers(path, result)
    return Representation(
        result.st_size, headers["Etag"], int(result.st_mtime)
    ), headers


def download_file(
    path: str, size: int | None, mtime: float | None
) -> tuple[Representation, dict[str, str]]:
    """A file still downloading, from the upstream's length and date: the
    same validators its hits will have, where they are known already."""
    headers = {"Content-Type": content_type_for(path)}
    etag = None
    if size is not None:
        headers["Accept-Ranges"] = "bytes"
    if mtime is not None:
        headers["Last-Modified"] = http_date(int(mtime))
        if size is not None:
            etag = headers["Etag"] = etag_for(size, mtime)
    return Representation(size, etag, None if mtime is None else int(mtime)), headers


def document(
    size: int, mtime: float, variant: str, content_type: str
) -> tuple[Representation, dict[str, str]]:
    """A registry document as answered: its own ETag per variant (the JSON
    and the HTML of one page, or one npm document for two hosts, must
    never validate each other), typed by its variant, ``Vary: Accept``."""
    etag = f'"{size:x}-{int(mtime):x}-{zlib.crc32(variant.encode()):x}"'
    return Representation(size, etag, int(mtime)), {
        "Accept-Ranges": "bytes",
        "Etag": etag,
        "Last-Modified": http_date(int(mtime)),
        "Content-Type": content_type,
        "Vary": "Accept",
    }
