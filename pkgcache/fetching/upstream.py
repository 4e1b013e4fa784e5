"""Ask the configured sources for one path, in order.

``Upstream.fetch`` tries each source until one answers 200, hands that
response's head to ``on_head`` and its body chunks to ``on_chunk``, and
reports how it ended; ``Upstream.resume`` continues a broken body with
Range requests. Each try is one ``Attempt`` (``attempt.py``: what an answer
means) over the ``Transport`` given (``curltransport.py`` in production, a
scripted one in tests). Settings are read per attempt, so a reload applies
to the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pkgcache import __version__
from pkgcache.fetching.attempt import (
    Attempt,
    AttemptSpec,
    ChunkCallback,
    HeadCallback,
    Limits,
    asks_if_changed,
)
from pkgcache.fetching.auth import Authorizer
from pkgcache.fetching.responses import FetchResult, Outcome, ResponseHead
from pkgcache.fetching.transport import Transport
from pkgcache.settings import LiveSettings, display_source
from pkgcache.store.paths import CacheKey

__all__ = [
    "ChunkCallback",
    "FetchResult",
    "HeadCallback",
    "Outcome",
    "ResponseHead",
    "Route",
    "Upstream",
]

log = logging.getLogger("pkgcache.upstream")

#: Hears of one attempt that ended: the path, what was asked, how it ended.
AttemptWatcher = Callable[[CacheKey, AttemptSpec, FetchResult, Attempt], None]

#: Times a broken download is continued with Range requests before its
#: clients get an unclean close.
MAX_RESUMES = 3

#: Outcomes that end a fetch: the file, its confirmation, a body already
#: handed on, or a size no source may send.
_FINAL = (Outcome.COMPLETE, Outcome.BROKEN, Outcome.NOT_MODIFIED, Outcome.TOO_LARGE)


@dataclass(frozen=True)
class Route:
    """Where a path is fetched from: the sources in order, and the path to
    append to each (percent-encoded, starting with ``/``, and with a query
    for a pass-through). ``paths``, when given, holds one path per source
    instead (a registry's file at the URL its index gave, then at the
    usual path on the other sources)."""

    sources: tuple[str, ...]
    path: str
    paths: tuple[str, ...] = ()
    #: What the sources want besides the path (a registry's tokens).
    auth: Authorizer | None = None

    def targets(self) -> list[tuple[str, str]]:
        """Each source with the path to ask it for, in order."""
        paths = self.paths or (self.path,) * len(self.sources)
        return list(zip(self.sources, paths, strict=True))

    def ending_with(self, source: str) -> Route:
        """The same route with ``source`` asked last (it served a file
        that did not match its digest)."""
        return self._reordered(lambda this: this == source)

    def starting_with(self, source: str | None) -> Route:
        """The same route with ``source`` asked first (where a cached copy
        came from), then the others in order."""
        if source not in self.sources:
            return self
        return self._reordered(lambda this: this != source)

    def _reordered(self, later: Callable[[str], bool]) -> Route:
        """Sources for which ``later`` is false first, each keeping its
        path; the order is otherwise kept (a stable sort)."""
        order = sorted(range(len(self.sources)), key=lambda i: later(self.sources[i]))
        return Route(
            tuple(self.sources[i] for i in order),
            self.path,
            tuple(self.paths[i] for i in order) if self.paths else (),
            self.auth,
        )


class Upstream:
    """The sources, and the transport that reaches them."""

    def __init__(
        self,
        live: LiveSettings,
        transport: Transport,
        on_attempt: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """``on_attempt(source, outcome, bytes)`` hears of every attempt."""
        self.live = live
        self.transport = transport
        self.on_attempt = on_attempt
        #: Hear of every attempt in full: ``(key, spec, result, attempt)``.
        self.watchers: list[AttemptWatcher] = []
        #: ``on_first_byte(key, source, seconds)``: an attempt's answer began.
        self.on_first_byte: Callable[[CacheKey, str, float], None] | None = None

    async def fetch(
        self,
        key: CacheKey,
        method: str,
        on_head: HeadCallback,
        on_chunk: ChunkCallback | None = None,
        route: Route | None = None,
        conditional: dict[str, str] | None = None,
    ) -> FetchResult:
        """Try the sources of ``route`` in order until one gives a 200 for
        ``key`` (default: the top-level sources, the key's own path).

        Any failure before the response head is accepted (a 403, 429 or
        5xx, a refused connection, a timeout) moves on to the next source.
        Once ``on_head`` accepted a response, a failure ends the fetch
        (BROKEN): its bytes already went to clients. A file larger than
        ``max_file_size`` ends it too (TOO_LARGE): every source would send
        the same file. Every source saying 404 or 410 is NOT_FOUND;
        otherwise the last failure decides between TIMEOUT and FAILED.
        With ``conditional`` headers (If-None-Match, If-Modified-Since), a
        304 ends the fetch as NOT_MODIFIED, unless it named another ETag:
        that source is then asked again without them; other headers in it
        (a registry's Accept) are sent as they are.
        """
        route = route or Route(self.live.current.sources, key.url_path)
        headers = conditional or {}
        what = "revalidate" if asks_if_changed(headers) else "fetch"
        all_not_found = True
        last = FetchResult(Outcome.FAILED, "no source configured")
        for source, path in route.targets():
            spec = AttemptSpec(
                source,
                path,
                method,
                on_head,
                on_chunk,
                headers,
                what=what,
                auth=route.auth,
            )
            last = await self._try(key, spec)
            if _refuted(spec, last):
                last = await self._try(key, spec.unconditional())
            if last.outcome in _FINAL:
                return last
            all_not_found = all_not_found and last.outcome is Outcome.NOT_FOUND
        if not all_not_found and last.outcome is Outcome.NOT_FOUND:
            last = FetchResult(Outcome.FAILED, "no source had it", last.source)
        return last

    async def same_by_head(
        self,
        key: CacheKey,
        recorded: str | None,
        route: Route | None,
        headers: dict[str, str],
    ) -> FetchResult | None:
        """Ask with a HEAD whether a stored registry manifest is current:
        NOT_MODIFIED when the upstream names the ``Docker-Content-Digest``
        ``recorded`` for it; the HEAD's own failure (a stale copy may then
        serve; a 404 removes it); or None: it changed, or nothing is
        recorded to compare, so it is fetched."""
        if not recorded:
            return None
        result = await self.fetch(
            key, "HEAD", lambda _head: True, None, route, headers or None
        )
        if result.outcome is not Outcome.COMPLETE or result.head is None:
            return result
        if result.head.headers.get("Docker-Content-Digest") == recorded:
            return FetchResult(
                Outcome.NOT_MODIFIED, "same digest", result.source, result.head
            )
        return None

    async def fetch_resuming(
        self,
        key: CacheKey,
        on_head: HeadCallback,
        on_chunk: ChunkCallback,
        progress: Callable[[], tuple[ResponseHead | None, int]],
        route: Route | None = None,
        conditional: dict[str, str] | None = None,
        resume_route: Route | None = None,
    ) -> FetchResult:
        """``fetch`` a GET, then, where the body broke off, ``resume`` it
        (at most ``MAX_RESUMES`` times). ``progress()`` tells the head
        accepted and the bytes received so far; ``resume_route``: the
        sources in their configured order, for the Range requests."""
        result = await self.fetch(key, "GET", on_head, on_chunk, route, conditional)
        resumes = 0
        while result.outcome is Outcome.BROKEN and resumes < MAX_RESUMES:
            resumes += 1
            head, received = progress()
            assert head is not None
            log.warning(
                "download of %s broke at byte %d (%s): resuming",
                key,
                received,
                result.detail,
            )
            resumed = await self.resume(
                key,
                head,
                received,
                result.source,
                on_chunk,
                same_source_first=resumes == 1,
                route=resume_route,
            )
            if resumed.outcome is Outcome.FAILED:
                break
            result = resumed
        return result

    async def resume(
        self,
        key: CacheKey,
        head: ResponseHead,
        offset: int,
        broken_source: str | None,
        on_chunk: ChunkCallback,
        same_source_first: bool = True,
        route: Route | None = None,
    ) -> FetchResult:
        """Continue a broken download at ``offset`` with a Range request.

        The source that broke is asked first (last when
        ``same_source_first`` is false: it broke again), then the others in
        order.
        ``If-Range`` carries the first response's ETag (or Last-Modified), so
        a changed file answers 200 and is refused. A 206 is spliced in only
        if its Content-Range continues the same total length and it carries
        every validator the first response had (ETag and Last-Modified, the
        same values): an upstream that ignores If-Range must not splice a
        new version onto the old one's first half. Returns COMPLETE,
        BROKEN (more bytes came, then it broke again: the caller may resume
        again), TOO_LARGE or FAILED (nobody could continue).
        """
        total = head.content_length
        validator = head.headers.get("ETag") or head.headers.get("Last-Modified")
        if total is None or not validator or offset >= total:
            return FetchResult(Outcome.FAILED, "cannot resume: no length or validator")
        expected_range = f"bytes {offset}-{total - 1}/{total}"

        def same_file(partial: ResponseHead) -> bool:
            for name in ("ETag", "Last-Modified"):
                first = head.headers.get(name)
                if first is not None and partial.headers.get(name) != first:
                    return False
            return partial.headers.get("Content-Range", "").strip() == expected_range

        route = route or Route(self.live.current.sources, key.url_path)
        targets = route.targets()
        sources = [source for source, _path in targets]
        if broken_source in sources:
            at = sources.index(broken_source) + (0 if same_source_first else 1)
            targets = targets[at:] + targets[:at]
        headers = {"Range": f"bytes={offset}-", "If-Range": validator}
        for source, path in targets:
            spec = AttemptSpec(
                source,
                path,
                "GET",
                same_file,
                on_chunk,
                headers,
                expected_status=206,
                what="resume",
                offset=offset,
                auth=route.auth,
            )
            result = await self._try(key, spec)
            if result.outcome in (Outcome.COMPLETE, Outcome.BROKEN, Outcome.TOO_LARGE):
                return FetchResult(result.outcome, result.detail, source, head)
        return FetchResult(Outcome.FAILED, "no source could resume it", broken_source)

    async def _try(self, key: CacheKey, spec: AttemptSpec) -> FetchResult:
        """One attempt at one source, with what its authorizer holds; a
        401 whose challenge the authorizer could answer is tried once
        more."""
        result = await self._attempt(key, spec.authorized())
        challenge = _challenge(result)
        if (
            spec.auth is not None
            and challenge is not None
            and await spec.auth.challenged(spec.url, challenge)
        ):
            result = await self._attempt(key, spec.authorized())
        return result

    async def _attempt(self, key: CacheKey, spec: AttemptSpec) -> FetchResult:
        """One attempt at one source, logged and counted."""
        attempt = Attempt(spec, self._limits(spec.offset), self._first_byte(key, spec))
        started = time.monotonic()
        result = await attempt.run(self.transport)
        warn = spec.what == "resume" or result.outcome is Outcome.TOO_LARGE
        log.log(
            logging.WARNING if warn else logging.INFO,
            "%s %s %s from %s%s: %s (%s, %d bytes, %.2fs)",
            spec.what,
            spec.method,
            key,
            display_source(spec.source),
            f" at byte {spec.offset}" if spec.offset else "",
            result.outcome.value,
            result.detail,
            attempt.body_bytes,
            time.monotonic() - started,
        )
        if self.on_attempt is not None:
            self.on_attempt(
                display_source(spec.source),
                result.outcome.name.lower(),
                attempt.body_bytes,
            )
        for watch in self.watchers:
            watch(key, spec, result, attempt)
        return result

    def _first_byte(
        self, key: CacheKey, spec: AttemptSpec
    ) -> Callable[[float], None] | None:
        heard = self.on_first_byte
        if heard is None:
            return None
        source = display_source(spec.source)
        return lambda seconds: heard(key, source, seconds)

    def _limits(self, offset: int) -> Limits:
        """This attempt's settings; ``offset`` bytes of the file came before
        its body (a resume), so they count against ``max_file_size``."""
        settings = self.live.current
        limit = settings.max_file_size
        return Limits(
            connect_timeout=settings.connect_timeout,
            stall_timeout=settings.stall_timeout,
            user_agent=settings.user_agent or f"package-cache/{__version__}",
            ca_file=settings.ca_file or None,
            body_limit=limit - offset if limit else None,
        )


def _challenge(result: FetchResult) -> str | None:
    """The ``WWW-Authenticate`` of a 401, or None."""
    head = result.head
    if result.outcome is not Outcome.FAILED or head is None or head.status != 401:
        return None
    return head.headers.get("WWW-Authenticate")


def _refuted(spec: AttemptSpec, result: FetchResult) -> bool:
    """A conditional request answered 304 with another strong ETag than
    asked about: not a confirmation (``attempt._confirms``)."""
    return (
        spec.conditional
        and result.outcome is Outcome.FAILED
        and result.head is not None
        and result.head.status == 304
    )
