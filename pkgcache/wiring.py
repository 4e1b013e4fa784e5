"""Build the daemon's parts and connect them: the one place that knows
them all.

Store, upstream client, download registry, repositories, evictor, metrics
and the HTTP application are made here from one ``LiveSettings``, and the
listeners that tie them together (a download that begins makes room, one
that is published is indexed and counted, an eviction is counted, the log
level follows reloads) are attached here, so no part reaches into another.
The store and the evictor share one ``CacheUsage``, the only count of
what the cache holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from tornado.httpserver import HTTPServer

from pkgcache import __version__
from pkgcache.clock import Clock
from pkgcache.digests.book import DigestBook
from pkgcache.digests.check import Hasher
from pkgcache.digests.indexer import Indexer
from pkgcache.fetching.auth import SmallResponse, fetch_small
from pkgcache.fetching.curltransport import CurlTransport
from pkgcache.fetching.download import Download
from pkgcache.fetching.inflight import Downloads
from pkgcache.fetching.transport import Transport
from pkgcache.fetching.upstream import Upstream
from pkgcache.observe.board import StatusBoard
from pkgcache.observe.demand import Demand
from pkgcache.observe.historyfile import HistoryFile
from pkgcache.observe.metrics import Metrics
from pkgcache.prefetch.page import PrefetchHandler
from pkgcache.prefetch.passes import Prefetcher
from pkgcache.registries.fronts import Fronts
from pkgcache.registries.ocitokens import TokenFetch
from pkgcache.repositories.rules import Repositories
from pkgcache.serving.app import make_app
from pkgcache.serving.context import InFlight, ServingContext
from pkgcache.settings import LiveSettings, Settings, display_source
from pkgcache.store.cache import CacheStore
from pkgcache.store.cull import CullResult
from pkgcache.store.eviction import Evictor
from pkgcache.store.keeping import Keeping
from pkgcache.store.meta import MetaStore
from pkgcache.store.paths import CacheKey
from pkgcache.store.smallfiles import SmallFiles
from pkgcache.store.usage import CacheUsage

#: Log levels of -v counts: errors, warnings, a line per request, debug.
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


def set_verbosity(settings: Settings) -> None:
    logging.getLogger().setLevel(_LEVELS[min(settings.verbose, len(_LEVELS) - 1)])


@dataclass(frozen=True)
class Parts:
    """The running daemon's parts (``server.py`` starts and stops them)."""

    live: LiveSettings
    context: ServingContext
    evictor: Evictor
    http_server: HTTPServer
    #: The hashing thread, shut down when the daemon stops.
    hasher: Hasher
    #: The status page's history on disk: saved periodically and at stop.
    history_file: HistoryFile
    #: Prefetch passes, started and stopped with the daemon.
    prefetcher: Prefetcher


def token_fetcher(live: LiveSettings, transport: Transport) -> TokenFetch:
    """A small GET over the downloads' transport, with the current
    timeouts: what a registry's token service is asked with."""

    async def fetch(url: str, headers: Mapping[str, str]) -> SmallResponse:
        settings = live.current
        return await fetch_small(
            transport,
            url,
            headers,
            connect_timeout=settings.connect_timeout,
            stall_timeout=settings.stall_timeout,
            user_agent=settings.user_agent or f"package-cache/{__version__}",
            ca_file=settings.ca_file or None,
        )

    return fetch


def build(settings: Settings) -> Parts:
    """Make every part from ``settings`` and connect them. Call inside the
    running IOLoop: the curl client and the HTTP server attach to it."""
    live = LiveSettings(settings)
    clock = Clock.from_environment()
    metrics = Metrics()
    usage = CacheUsage()
    store = CacheStore(settings.cache, usage)
    transport = CurlTransport(max_clients=settings.upstream_connections)
    upstream = Upstream(live, transport, on_attempt=metrics.fetch_done)
    meta = MetaStore(store.root)
    hasher = Hasher()
    keeping = Keeping(store, meta, clock)
    downloads = Downloads(store, upstream, live, keeping, clock, hasher=hasher)
    repositories = Repositories(settings.all_repositories)
    digests = DigestBook()
    live.on_change(lambda _old, new: repositories.update(new.all_repositories))
    metrics.track_downloads(lambda: len(downloads))
    metrics.track_usage(usage)
    metrics.track_disk(store.root, live)

    def evicted(result: CullResult) -> None:
        metrics.evicted(result.files, result.bytes)

    evictor = Evictor(live, store.root, usage, on_evicted=evicted, clock=clock)
    board = StatusBoard(clock)
    board.last_eviction = lambda: evictor.last_pass
    upstream.watchers.append(board.attempt_done)
    history_file = HistoryFile(
        store.root,
        board.history,
        clock,
        lambda: [repository.name for repository in live.current.all_repositories],
    )
    history_file.load()

    def make_room(download: Download) -> None:
        size = download.head.content_length if download.head else None
        if size and not evictor.could_fit(size):
            download.do_not_keep("larger than max_size")
        elif size:
            evictor.make_room(size, store.final_path(download.key))

    def count_stored(download: Download) -> None:
        metrics.downloaded(download.plan.repository, download.received)
        count_digest(download)

    def count_digest(download: Download) -> None:
        repository = download.plan.repository
        if download.mismatch is not None:
            expected, actual = download.mismatch
            source = download.result.source if download.result else None
            metrics.digest_mismatch(
                repository,
                display_source(source or "-"),
                {
                    "path": str(download.key),
                    "expected": str(expected),
                    "actual": str(actual),
                },
            )
            board.digest_mismatch(
                str(download.key),
                repository,
                display_source(source or "-"),
                str(expected),
                str(actual),
            )
        elif download.published and not download.not_modified:
            metrics.file_stored(repository, verified=download.verified is not None)

    indexer = Indexer(digests, store.read_stored)

    def index_stored(download: Download) -> None:
        rules = repositories.rules_for(download.key)
        if download.published and rules is not None:
            indexer.stored(rules.repository.settings.kind, download.key)

    indexer.scan(
        store.root,
        [(repo.kind, repo.prefix_segments) for repo in settings.all_repositories],
    )
    downloads.on_end.append(index_stored)

    def first_byte(key: CacheKey, source: str, seconds: float) -> None:
        rules = repositories.rules_for(key)
        metrics.first_byte(rules.repository.name if rules else "-", source, seconds)

    upstream.on_first_byte = first_byte
    downloads.fits = evictor.could_fit
    downloads.on_begin.append(make_room)
    downloads.on_end.append(count_stored)
    live.on_change(lambda _old, new: set_verbosity(new))
    fronts = Fronts(
        store,
        digests,
        downloads,
        clock,
        repositories.rules_for,
        token_fetcher(live, transport),
    )
    if fronts.maven is not None:
        downloads.on_end.append(fronts.maven.forget_disagreeing)
    in_flight = InFlight()
    metrics.track_requests(lambda: in_flight.count)
    context = ServingContext(
        live=live,
        store=store,
        upstream=upstream,
        downloads=downloads,
        repositories=repositories,
        fronts=fronts,
        digests=digests,
        small_files=SmallFiles(),
        meta=meta,
        usage=usage,
        metrics=metrics,
        in_flight=in_flight,
        clock=clock,
        started=clock.now(),
        board=board,
        demand=Demand(store.root, clock),
    )
    prefetcher = Prefetcher(context, context.demand, metrics)
    evictor.protected = prefetcher.protected
    board.prefetch_passes = lambda: {
        name: report.as_dict() for name, report in prefetcher.last.items()
    }
    prefetch_page = (
        r"/\.pkgcache/prefetch",
        PrefetchHandler,
        {"context": context, "prefetcher": prefetcher},
    )
    http_server = HTTPServer(
        make_app(context, [prefetch_page]),
        xheaders=False,
        idle_connection_timeout=settings.idle_timeout,
    )
    return Parts(live, context, evictor, http_server, hasher, history_file, prefetcher)
