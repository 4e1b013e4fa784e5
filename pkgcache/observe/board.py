"""The status page's recorders, in one object built by ``wiring.py``:
history, rates, sources, recent trouble and the top files. The serving
and fetching layers call one method each when a request or an upstream
attempt ends; each call costs O(1) (the top lists amortized), so the page
can know the last week without anything walking it per request.

Wall time (``clock.now``) dates what is shown and kept across restarts;
monotonic time (``clock.monotonic``) measures the rates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tornado.httputil import HTTPServerRequest

from pkgcache.clock import Clock
from pkgcache.fetching.attempt import Attempt, AttemptSpec
from pkgcache.fetching.responses import FetchResult
from pkgcache.observe import trouble
from pkgcache.observe.history import History
from pkgcache.observe.rates import Rates
from pkgcache.observe.results import Result
from pkgcache.observe.sources import GOOD_OUTCOMES, SourceBoard
from pkgcache.observe.top import TopFiles
from pkgcache.settings import display_source
from pkgcache.store.eviction import EvictionPass
from pkgcache.store.paths import CacheKey

#: Results of requests that got the file (or its confirmation).
_SERVED = frozenset(
    (
        Result.HIT,
        Result.MISS,
        Result.JOINED,
        Result.REVALIDATED,
        Result.REFRESHED,
        Result.STALE,
        Result.PASS,
    )
)
_REFUSED = frozenset((Result.REFUSED, Result.FORBIDDEN))


class StatusBoard:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.history = History()
        self.rates = Rates()
        self.sources = SourceBoard()
        self.trouble = trouble.Trouble()
        self.top = TopFiles()
        #: What the evictor's last pass did (set by ``wiring.py``).
        self.last_eviction: Callable[[], EvictionPass | None] = lambda: None
        #: Each repository's last prefetch pass, as data (set by ``wiring.py``).
        self.prefetch_passes: Callable[[], dict[str, dict[str, Any]]] = dict

    def request_done(
        self,
        request: HTTPServerRequest,
        status: int,
        result: str,
        sent: int,
        repository: str,
    ) -> None:
        """A request under a repository (or under none: "-") was answered
        with ``status`` and ``result``; ``sent`` body bytes left."""
        now = self.clock.now()
        self.history.record(now, repository, result, sent)
        self.rates.request(self.clock.monotonic(), sent)
        path = request.path or "-"
        if result in _SERVED and status < 400:
            self.top.served(now, path, sent)
            return
        client = request.remote_ip or "-"
        if result in _REFUSED:
            kind = trouble.REFUSED
        elif status == 404 and result in _SERVED:
            kind = trouble.NOT_FOUND
        elif status >= 500:
            kind = trouble.FAILED
        else:
            return
        self.trouble.add(now, kind, path, client, f"HTTP {status} ({result})")

    def attempt_done(
        self, key: CacheKey, spec: AttemptSpec, result: FetchResult, attempt: Attempt
    ) -> None:
        """``Upstream.watchers``: one attempt at one source ended."""
        now = self.clock.now()
        source = display_source(spec.source)
        outcome = result.outcome.name.lower()
        self.sources.attempt(
            now, source, outcome, result.detail, attempt.first_byte_seconds
        )
        self.rates.received(self.clock.monotonic(), attempt.body_bytes)
        if outcome not in GOOD_OUTCOMES:
            detail = f"{spec.what} from {source}: {outcome} ({result.detail})"
            self.trouble.add(now, trouble.UPSTREAM, str(key), "-", detail)

    def digest_mismatch(
        self, path: str, repository: str, source: str, expected: str, actual: str
    ) -> None:
        """A download refused: its bytes did not match the digest known."""
        detail = f"{repository} from {source}: expected {expected}, got {actual}"
        self.trouble.add(self.clock.now(), trouble.DIGEST, path, "-", detail)
