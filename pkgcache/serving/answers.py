"""How each kind of answer is sent: a stored copy (a file, or a registry
document finished for this client), a body kept in memory, a download's
response head; and the one place every answer with a body goes through,
``_respond``: the pure decision (``decisions.decide``: 200, 206, 304, 412,
416, HEAD) sets status and headers, then a body source (``bodies.py``)
drains into the client's ``ClientOutput``.

``Answering`` is the base of ``handler.CacheHandler``, which decides what
to answer (``choice.py``) and calls these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from tornado.web import HTTPError

from pkgcache.fetching.upstream import ResponseHead
from pkgcache.observe.results import Result
from pkgcache.registries.targets import Target
from pkgcache.serving import headers
from pkgcache.serving.bodies import Body, FileBody, MemoryBody
from pkgcache.serving.context import ServingContext
from pkgcache.serving.decisions import Representation, decide
from pkgcache.serving.output import ClientOutput
from pkgcache.serving.pages import PageHandler
from pkgcache.store.cache import CachedFile, OutsideCache, PathConflict
from pkgcache.store.meta import Validators
from pkgcache.store.smallfiles import SmallFiles


class Answering(PageHandler):
    """Sends answers for the target a subclass has set (``_target``)."""

    context: ServingContext
    output: ClientOutput
    #: What the request is for (set by the subclass before any answer).
    _target: Target
    #: The algorithm of the digest the file matched, for the access log.
    verified: str | None = None

    def _validators_of(self, cached: CachedFile | None) -> Validators | None:
        """The stored copy's validators, when recorded for that very file."""
        if cached is None:
            return None
        return self.context.meta.read(self._target.key, cached.stat)

    def _lookup(self) -> CachedFile | None:
        try:
            return self.context.store.lookup(self._target.key)
        except OutsideCache as outside:
            self.result = Result.REFUSED
            raise HTTPError(404, "%s", outside) from None
        except PathConflict as conflict:
            self.result = Result.REFUSED
            raise HTTPError(409, "%s", conflict) from None

    async def _serve_stored(self, cached: CachedFile) -> None:
        """A complete stored copy: a hit, or what a download left."""
        self.context.store.touch(cached.path, cached.stat)
        if self._target.document is not None:
            await self._serve_document(cached)
            return
        representation, file_headers = headers.cached_file(cached.path, cached.stat)
        recorded = self._validators_of(cached)
        if recorded is not None and recorded.verified:
            self.verified = recorded.verified.split(":", 1)[0]
        await self._respond(representation, file_headers, self._body_of(cached))

    def _body_of(self, cached: CachedFile) -> Body:
        """A complete file's bytes: from memory when small (``SmallFiles``),
        else its descriptor, opened confined to the cache."""
        with self._reading(cached):
            if SmallFiles.fits(cached.stat):
                return MemoryBody(
                    self.context.small_files.read(
                        cached.path,
                        cached.stat,
                        lambda: self.context.store.open_verified(cached),
                    )
                )
            fd = self.context.store.open_verified(cached)
            return FileBody(fd, cached.stat.st_size, cached.path)

    @contextlib.contextmanager
    def _reading(self, cached: CachedFile) -> Iterator[None]:
        """Reading a looked-up file: a way out of the cache is 404, a file
        culled between the look-up and now is 503."""
        try:
            yield
        except OutsideCache as outside:
            self.result = Result.REFUSED
            raise HTTPError(404, "%s", outside) from None
        except OSError as error:
            raise HTTPError(503, "%s changed while read", cached.path) from error

    async def _serve_kept(self, kept: bytes, head: ResponseHead) -> None:
        """A body the cache could not store, kept in memory whole."""
        if self._target.document is not None:
            upstream_type = head.headers.get("Content-Type")
            now = self.context.clock.now()
            await self._serve_document_bytes(kept, now, upstream_type)
            return
        representation, file_headers = headers.download_file(
            self._target.key.relative, len(kept), head.last_modified
        )
        await self._respond(representation, file_headers, MemoryBody(kept))

    def _from_head(self, head: ResponseHead) -> tuple[Representation, dict[str, str]]:
        """A file not on disk yet, described by the upstream's response
        head (and typed by it, for a passed-through registry page)."""
        found = headers.download_file(
            self._target.key.relative, head.content_length, head.last_modified
        )
        if self._target.upstream_type:
            found[1]["Content-Type"] = head.headers.get(
                "Content-Type", "application/octet-stream"
            )
        return found

    async def _serve_document(self, cached: CachedFile) -> None:
        """A stored document: sent from the file as it is (a PyPI page,
        rewritten when stored), or read and finished for this client (an
        npm document)."""
        document = self._target.document
        assert document is not None
        result = cached.stat
        identity = (cached.path, result.st_ino, result.st_size, result.st_mtime_ns)
        store = self.context.store
        if document.learn is not None:
            document.learn(lambda: store.read_verified(cached), identity)
        validators = self._validators_of(cached)
        upstream_type = validators.content_type if validators else None
        if document.finish is None:
            representation, answer_headers = headers.document(
                result.st_size,
                result.st_mtime,
                document.variant,
                document.content_type(upstream_type),
            )
            if document.headers_of is not None:
                answer_headers.update(document.headers_of(validators))
            await self._respond(representation, answer_headers, self._body_of(cached))
            return
        with self._reading(cached):
            data = store.read_verified(cached)
        await self._serve_document_bytes(data, result.st_mtime, upstream_type, identity)

    async def _serve_document_bytes(
        self,
        data: bytes,
        mtime: float,
        upstream_type: str | None,
        identity: object | None = None,
    ) -> None:
        """Answer a document's bytes, finished for this client (npm's
        tarball URLs), typed by its variant, with ``Vary: Accept`` and an
        ETag of its own per variant."""
        document = self._target.document
        assert document is not None
        if document.finish is not None:
            data = await document.finish(data, identity)
        representation, answer_headers = headers.document(
            len(data), mtime, document.variant, document.content_type(upstream_type)
        )
        if document.headers_of is not None:
            answer_headers.update(document.headers_of(None))
        await self._respond(representation, answer_headers, MemoryBody(data))

    async def _respond(
        self,
        representation: Representation,
        file_headers: dict[str, str],
        body: Body | None,
        ranges: bool = True,
    ) -> None:
        """Decide, set status and headers, then drain the body (if any)."""
        request_headers: Mapping[str, str] = self.request.headers
        if not ranges:
            request_headers = {
                name: value
                for name, value in self.request.headers.items()
                if name not in ("Range", "If-Range")
            }
        answer = decide(self.request.method or "GET", request_headers, representation)
        self.set_status(answer.status)
        self.set_header("X-Package-Cache", self.result)
        if answer.status in (200, 206, 304):
            for name, value in file_headers.items():
                self.set_header(name, value)
        if answer.status >= 400:
            self.set_header("Content-Type", "text/plain")
        for name, value in answer.headers:
            self.set_header(name, value)
        try:
            if body is None or not answer.send_body:
                return
            complete = await body.send(self.output, answer.start, answer.end)
            if not complete and not self.output.closed:
                self.output.cut()
        finally:
            if body is not None:
                body.close()
