"""The request handler: a hit, a join or a miss, and errors as statuses.

Hits are served by tornado's ``StaticFileHandler`` machinery (Range, 304,
HEAD), with a cheap ETag, large reads and explicit access times. Misses and
joins stream a ``Download`` through a ``ClientStream``. Once a body has
started, a failure closes the connection without a clean end, so clients
see an error instead of a short file.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import mimetypes
import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

from tornado.web import HTTPError, StaticFileHandler

from pkgcache.config import Settings
from pkgcache.download import Download, Downloads
from pkgcache.follow import ClientStream
from pkgcache.paths import CacheKey, PathRefused, cache_key
from pkgcache.store import CacheStore, PathConflict
from pkgcache.upstream import Outcome, ResponseHead, Upstream

log = logging.getLogger("pkgcache.handler")

#: Read size for hits: large reads are what make a big hit fast.
HIT_READ_SIZE = 1024 * 1024


class RequestCounter(Protocol):
    def started(self) -> None: ...

    def finished(self) -> None: ...


@dataclass
class CacheContext:
    """What every request needs; one per server, passed to the handler."""

    settings: Settings
    store: CacheStore
    upstream: Upstream
    downloads: Downloads
    in_flight: RequestCounter

    def apply(self, settings: Settings) -> None:
        """Use new settings from the next request on (SIGHUP)."""
        self.settings = settings
        self.upstream.settings = settings


def _allowed(remote_ip: str | None, networks: tuple[Any, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote_ip or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def content_type_for(path: str) -> str:
    """Guess a Content-Type from the file name.

    A compressed file (``.tar.gz``, ``.tar.xz``, ``.bz2``) is
    ``application/octet-stream``: its compression is part of the file, and
    a ``charset=gzip`` or Content-Encoding would make clients unpack it.
    """
    mime_type, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None or mime_type is None:
        return "application/octet-stream"
    return mime_type


def etag_for(size: int, mtime: float) -> str:
    """A strong-enough validator from size and mtime, the same on miss and hit."""
    return f'"{size:x}-{int(mtime):x}"'


class CacheHandler(StaticFileHandler):
    """Serves one request for one path; see the module docstring."""

    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def initialize(self, context: CacheContext) -> None:  # type: ignore[override]
        super().initialize(path=context.store.root)
        self.context = context
        #: hit, miss, joined, refused or error: for the access log.
        self.result = "error"
        self.bytes_sent = 0
        self.unclean = False
        self._stream: ClientStream | None = None
        self._counted = False

    def prepare(self) -> None:
        self.context.in_flight.started()
        self._counted = True
        settings = self.context.settings
        if not settings.allows_everyone and not _allowed(
            self.request.remote_ip, settings.allow
        ):
            self.result = "forbidden"
            log.warning("refused client %s: not in allow", self.request.remote_ip)
            raise HTTPError(403, "client not allowed")

    def on_finish(self) -> None:
        if self._counted:
            self._counted = False
            self.context.in_flight.finished()

    async def get(self, path: str, include_body: bool = True) -> None:
        try:
            key = cache_key(self.request.uri or "/")
        except PathRefused as refused:
            self.result = "refused"
            raise HTTPError(refused.status, "%s", refused.reason) from None
        download = self.context.downloads.get(key)
        if download is None:
            try:
                cached = self.context.store.lookup(key)
            except PathConflict as conflict:
                self.result = "refused"
                raise HTTPError(409, "%s", conflict) from None
            if cached is not None:
                await self._serve_hit(key, include_body, cached)
                return
            if not include_body:
                await self._head_miss(key)
                return
            download = self.context.downloads.start(key)
            self.result = "miss"
        else:
            self.result = "joined"
        await self._serve_download(key, download, include_body)

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.client_left()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """HTTP errors are in the access log already; log only real faults."""
        if not isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A one-line plain-text error: never a traceback, never HTML."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")

    # -- hits ---------------------------------------------------------------

    async def _serve_hit(
        self, key: CacheKey, include_body: bool, cached: os.stat_result
    ) -> None:
        """Serve a complete file: a hit, or a download that ended meanwhile."""
        if self.result == "error":
            self.result = "hit"
        self.set_header("X-Package-Cache", self.result)
        await super().get(key.relative, include_body)
        if self.absolute_path is not None:
            if include_body and self.get_status() in (200, 206):
                self.bytes_sent = int(self._headers.get("Content-Length", 0))
            self.context.store.touch(self.absolute_path, cached)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        """As tornado's, but a symlink out of the cache is just not there."""
        try:
            return super().validate_absolute_path(root, absolute_path)
        except HTTPError as error:
            if error.status_code == 403:
                raise HTTPError(404, "symlink out of the cache") from None
            raise

    def compute_etag(self) -> str | None:
        if getattr(self, "absolute_path", None) is None:
            return None
        modified = self.get_modified_time()
        assert modified is not None
        return etag_for(self.get_content_size(), modified.timestamp())

    def get_content_type(self) -> str:
        assert self.absolute_path is not None
        return content_type_for(self.absolute_path)

    def get_cache_time(
        self, path: str, modified: datetime.datetime | None, mime_type: str
    ) -> int:
        return 0

    @classmethod
    def get_content(
        cls, abspath: str, start: int | None = None, end: int | None = None
    ) -> Generator[bytes, None, None]:
        """Read the file in large chunks (tornado's default is 64 KiB)."""
        with open(abspath, "rb", buffering=0) as file:
            position = start or 0
            remaining = None if end is None else end - position
            if position:
                file.seek(position)
            while remaining is None or remaining > 0:
                size = (
                    HIT_READ_SIZE
                    if remaining is None
                    else min(HIT_READ_SIZE, remaining)
                )
                chunk = file.read(size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    # -- misses and joins ---------------------------------------------------

    async def _serve_download(
        self, key: CacheKey, download: Download, include_body: bool
    ) -> None:
        await download.wait_for_head()
        if download.ended:
            # It ended before this client saw a byte: serve what it left.
            cached = self.context.store.lookup(key) if download.published else None
            if cached is not None:
                await self._serve_hit(key, include_body, cached)
                return
            assert download.result is not None
            status = download.result.client_status
            raise HTTPError(
                502 if status == 200 else status, "%s", download.result.detail
            )
        assert download.head is not None
        self.set_header("X-Package-Cache", self.result)
        self._set_file_headers(key, download.head)
        if not include_body:
            return
        self._stream = ClientStream(self, download, self.context.settings.client_buffer)
        complete = await self._stream.run()
        self.bytes_sent = self._stream.offset
        if not complete and not self._stream.closed:
            self.unclean = True
            self.request.connection.close()  # type: ignore[union-attr]

    async def _head_miss(self, key: CacheKey) -> None:
        """HEAD of an uncached file: ask the sources with HEAD, fetch nothing."""
        self.result = "miss"
        result = await self.context.upstream.fetch(key, "HEAD", lambda _head: True)
        if result.outcome is not Outcome.COMPLETE or result.head is None:
            raise HTTPError(result.client_status, "%s", result.detail)
        self.set_header("X-Package-Cache", "miss")
        self._set_file_headers(key, result.head)

    def _set_file_headers(self, key: CacheKey, head: ResponseHead) -> None:
        """The headers of a file we do not have on disk yet, from upstream's."""
        self.set_header("Content-Type", content_type_for(key.relative))
        size = head.content_length
        mtime = head.last_modified
        if size is not None:
            self.set_header("Content-Length", size)
        if mtime is not None:
            self.set_header(
                "Last-Modified", datetime.datetime.fromtimestamp(mtime, datetime.UTC)
            )
            if size is not None:
                self.set_header("Etag", etag_for(size, mtime))
