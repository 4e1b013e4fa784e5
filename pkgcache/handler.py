"""The request handler: a hit, a join or a miss, and errors as statuses.

Hits are served by tornado's ``StaticFileHandler`` machinery (Range, 304,
HEAD), with a cheap ETag, explicit access times, small files from memory
(``smallfiles.py``) and big ones by ``os.sendfile`` (``sendfile.py``).
Misses and joins stream a ``Download`` through a ``ClientStream``, with a
single Range honoured once the length is known. Once a body has started, a
failure closes the connection without a clean end, so clients see an error
instead of a short file.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tornado import httputil
from tornado.iostream import StreamClosedError
from tornado.web import Finish, HTTPError, StaticFileHandler

from pkgcache import direct, sendfile
from pkgcache.clients import client_in, resolve_client
from pkgcache.config import Settings
from pkgcache.download import Download, Downloads
from pkgcache.follow import ClientStream
from pkgcache.headers import SERVER, content_type_for, etag_for, file_headers, http_date
from pkgcache.metrics import Metrics
from pkgcache.paths import CacheKey, PathRefused, cache_key
from pkgcache.smallfiles import SmallFiles
from pkgcache.store import CachedFile, CacheStore, OutsideCache, PathConflict
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
    small_files: SmallFiles = field(default_factory=SmallFiles)
    metrics: Metrics = field(default_factory=Metrics)

    def apply(self, settings: Settings) -> None:
        """Use new settings from the next request on (SIGHUP)."""
        self.settings = settings
        self.upstream.settings = settings


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
        resolve_client(self.request, settings.trusted_proxies)
        if not settings.allows_everyone and not client_in(
            self.request.remote_ip, settings.allow
        ):
            self.result = "forbidden"
            log.warning("refused client %s: not in allow", self.request.remote_ip)
            raise HTTPError(403, "client not allowed")

    def set_default_headers(self) -> None:
        self._headers["Server"] = SERVER

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
            cached = self._lookup(key)
            if cached is not None:
                await self._serve_hit(include_body, cached)
                return
            if not include_body:
                await self._head_miss(key)
                return
            download = self.context.downloads.start(key)
            self.result = "miss"
        else:
            self.result = "joined"
        await self._serve_download(key, download, include_body)

    def _lookup(self, key: CacheKey) -> CachedFile | None:
        try:
            return self.context.store.lookup(key)
        except OutsideCache as outside:
            self.result = "refused"
            raise HTTPError(404, "%s", outside) from None
        except PathConflict as conflict:
            self.result = "refused"
            raise HTTPError(409, "%s", conflict) from None

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

    async def _serve_hit(self, include_body: bool, cached: CachedFile) -> None:
        """Serve a complete file: a hit, or a download that ended meanwhile.

        tornado's StaticFileHandler does Range, 304 and HEAD; the store's
        look-up already did the confinement checks and the stat, so the
        hooks below only hand its answer on.
        """
        if self.result == "error":
            self.result = "hit"
        self._headers["X-Package-Cache"] = self.result
        self._cached = cached
        self.context.store.touch(cached.path, cached.stat)
        self._sendfile_range: tuple[int, int] | None = None
        await super().get(cached.path, include_body)
        if self._sendfile_range is not None:
            await self._send_with_sendfile(cached.path, *self._sendfile_range)
        if include_body and self._status_code in (200, 206):
            self.bytes_sent = int(self._headers.get("Content-Length", 0))

    async def _send_with_sendfile(self, path: str, start: int, end: int) -> None:
        """The body of a big hit, chosen in ``get_content``: headers first,
        then the kernel copies the file to the socket."""
        try:
            await self.flush()
            await sendfile.send_range(self.request.connection, path, start, end - start)
        except StreamClosedError:
            # The client left; tornado may not know yet, and finish() would
            # count a short body: close the connection ourselves.
            self.request.connection.close()  # type: ignore[union-attr]
        except OSError as error:
            log.error("cannot send %s: %s", path, error)
            self.unclean = True
            self.request.connection.close()  # type: ignore[union-attr]

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        return path

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        self._stat_result = self._cached.stat
        return self._cached.path

    def set_headers(self) -> None:
        """tornado's headers of a hit, from the stat we have, formatted once."""
        self._headers.update(file_headers(self._cached.path, self._stat_result))

    def compute_etag(self) -> str | None:
        result = getattr(self, "_stat_result", None)
        if result is None:
            return None
        return etag_for(result.st_size, result.st_mtime)

    def get_content(  # type: ignore[override]
        self, abspath: str, start: int | None = None, end: int | None = None
    ) -> bytes | Generator[bytes, None, None]:
        """Small files from memory, others in large reads."""
        result = self._cached.stat
        if SmallFiles.fits(result):
            return self.context.small_files.read(abspath, result)[start:end]
        if direct.usable(self.request.connection):  # type: ignore[arg-type]
            self._sendfile_range = (start or 0, result.st_size if end is None else end)
            return b""
        return self.read_chunks(abspath, start, end)

    @staticmethod
    def read_chunks(
        abspath: str, start: int | None = None, end: int | None = None
    ) -> Generator[bytes, None, None]:
        """Read the file in large chunks (tornado's default is 64 KiB)."""
        with open(abspath, "rb", buffering=0) as file:
            position = start or 0
            remaining = None if end is None else end - position
            if position:
                file.seek(position)
            while remaining is None or remaining > 0:
                size = HIT_READ_SIZE if remaining is None else remaining
                size = min(size, HIT_READ_SIZE)
                chunk = file.read(size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
                if len(chunk) < size:
                    return  # a short read of a complete file is its end

    # -- misses and joins ---------------------------------------------------

    async def _serve_download(
        self, key: CacheKey, download: Download, include_body: bool
    ) -> None:
        await download.wait_for_head()
        if download.ended:
            # It ended before this client saw a byte: serve what it left.
            cached = self._lookup(key) if download.published else None
            if cached is not None:
                await self._serve_hit(include_body, cached)
                return
            assert download.result is not None
            status = download.result.client_status
            raise HTTPError(
                502 if status == 200 else status, "%s", download.result.detail
            )
        assert download.head is not None
        self.set_header("X-Package-Cache", self.result)
        self._set_file_headers(key, download.head)
        start, end = self._range_of_download(download.head.content_length)
        if not include_body:
            return
        self._stream = ClientStream(
            self, download, self.context.settings.client_buffer, start, end
        )
        joined = self.context.metrics.joined_clients
        if self.result == "joined":
            joined.inc()
        try:
            complete = await self._stream.run()
        finally:
            if self.result == "joined":
                joined.dec()
        self.bytes_sent = self._stream.sent
        if not complete and not self._stream.closed:
            self.unclean = True
            self.request.connection.close()  # type: ignore[union-attr]

    def _range_of_download(self, size: int | None) -> tuple[int, int | None]:
        """A single Range on a file still downloading (``wget -c``,
        ``curl -C -``): 206 as soon as the total length is known, else the
        whole file. Sets the status and headers; returns (start, end)."""
        header = self.request.headers.get("Range")
        parsed = httputil._parse_request_range(header) if header else None
        if parsed is None or size is None:
            return 0, None
        start, end = parsed
        if start is not None and start < 0:
            start = max(0, start + size)
        start = start or 0
        end = size if end is None or end > size else end
        if start >= size or start >= end:
            self.clear_header("Etag")
            self.set_status(416)
            self.set_header("Content-Type", "text/plain")
            self.set_header("Content-Range", f"bytes */{size}")
            self.set_header("Content-Length", 0)
            raise Finish()
        if (start, end) != (0, size):
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.set_header("Content-Length", end - start)
        return start, end

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
            self.set_header("Last-Modified", http_date(int(mtime)))
            if size is not None:
                self.set_header("Etag", etag_for(size, mtime))
