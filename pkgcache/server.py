"""Start-up, reload and shutdown: logging, cache checks, listening, signals.

- SIGTERM / SIGINT: stop accepting, give in-flight responses
  ``shutdown_grace`` seconds, close the rest, remove the partial files of
  unfinished downloads, exit 0.
- SIGHUP: read the config file again and swap the settings whole; they
  apply from the next request. A bad file is logged and the old settings
  stay. Restart-only settings (``settings.RESTART_ONLY``) keep their
  running values, and the reload says which it ignored.

Start-up order: the cache folder's lock (``store/lock.py``) before
anything in the folder is touched, then the sockets, before the slow work
(the partial sweep, the index scan), so a port taken or a cache in use is
one line at once and costs the running daemon nothing.

The start line (version, cache, addresses, repositories and their sources)
and the stop lines are logged whatever ``verbose`` is, through
``observe/notice.py``.

Exit codes: 0 after a clean stop, 1 when the server cannot run (cache
folder unusable, port taken, no syslog socket), 2 when another process
holds the cache folder's lock (one line naming its pid). Usage errors (2)
are ``cli.py``'s.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from pkgcache import __version__, wiring
from pkgcache.accepting import Acceptor, address_of
from pkgcache.config import ConfigError
from pkgcache.observe.notice import notice_log
from pkgcache.observe.redact import RedactCredentials
from pkgcache.registries.pypi import missing_file_sources
from pkgcache.settings import RepositorySettings, Settings, display_source
from pkgcache.store.cache import StoreError
from pkgcache.store.lock import CacheLock, CacheLocked

log = logging.getLogger("pkgcache")

EXIT_FAILURE = 1
#: Another process holds the cache folder (``store/lock.py``).
EXIT_LOCKED = 2
#: Host names meaning "every address, IPv4 and IPv6".
_EVERY_ADDRESS = ("::", "*", "")

SettingsLoader = Callable[[], Settings]


class StartupError(Exception):
    """The server cannot start; the message says why, in one line."""


def setup_logging(settings: Settings) -> None:
    """stderr by default, or syslog (facility daemon) as 0.2 did."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if settings.syslog:
        if not os.path.exists("/dev/log"):
            raise StartupError("--syslog: /dev/log does not exist")
        handler: logging.Handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(
            logging.Formatter(f"package-cache[{os.getpid()}]: %(message)s")
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(RedactCredentials())
    root.addHandler(handler)
    wiring.set_verbosity(settings)
    # tornado's own access log would repeat ours.
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)


def raise_descriptor_limit() -> None:
    """Every client connection is a descriptor, and so is each download's
    partial file and curl socket: the soft RLIMIT_NOFILE (1024 under
    systemd and most shells) goes up to the hard limit, as nginx's
    ``worker_rlimit_nofile`` does. The service files raise the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as error:
            log.info("descriptor limit %d, not raised to %d: %s", soft, hard, error)
            return
        log.info("descriptor limit %d (raised from %d)", hard, soft)
    else:
        log.info("descriptor limit %d", soft)


#: Connections the kernel queues before we accept them. tornado's 128
#: drops SYNs when a build farm connects at once (clients then wait for a
#: retransmit, 1 s or more); nginx uses 511. The kernel caps it at
#: net.core.somaxconn.
LISTEN_BACKLOG = 1024


def bind(settings: Settings) -> list[socket.socket]:
    """Bind every configured address, all or nothing."""
    sockets: list[socket.socket] = []
    for host in settings.host:
        address = None if host in _EVERY_ADDRESS else host
        try:
            sockets += bind_sockets(settings.port, address, backlog=LISTEN_BACKLOG)
        except OSError as error:
            for sock in sockets:
                sock.close()
            reason = error.strerror or str(error)
            raise StartupError(
                f"cannot listen on {host} port {settings.port}: {reason}"
            ) from None
    return sockets


def listen(server: HTTPServer, sockets: list[socket.socket]) -> Acceptor:
    """Accept on the bound ``sockets`` (``accepting.py``, not tornado's
    ``add_sockets``: it pauses when out of descriptors instead of
    spinning)."""
    acceptor = Acceptor(server, sockets)
    acceptor.start()
    return acceptor


def lock_cache(settings: Settings) -> CacheLock:
    """Create the cache folder if needed and take its lock: before the
    partial sweep or any scan, so a second daemon never touches the
    running one's files. Raises ``CacheLocked`` or ``StartupError``."""
    root = os.path.realpath(settings.cache)
    try:
        os.makedirs(root, exist_ok=True)
        return CacheLock.take(root)
    except OSError as error:
        raise StartupError(
            f"cache folder {root} is not usable: {error.strerror or error}"
        ) from None


def start_line(settings: Settings, root: str, addresses: list[str]) -> str:
    """What the daemon serves, in one line (credentials hidden)."""
    return (
        f"package-cache {__version__} serving {root} on {', '.join(addresses)}: "
        f"{repositories_line(settings)}"
    )


def repositories_line(settings: Settings) -> str:
    """Each repository: name, kind, prefix, sources (never an empty
    ``from``: a repository of the top-level ``sources`` is ``default``)."""
    return "; ".join(_repository_line(repo) for repo in settings.all_repositories)


def _repository_line(repo: RepositorySettings) -> str:
    line = f"{repo.name} ({repo.kind}) {repo.prefix}"
    if repo.sources:
        line += " from " + " ".join(display_source(s) for s in repo.sources)
    if repo.file_sources:
        line += ", files from " + " ".join(display_source(s) for s in repo.file_sources)
    return line


class Daemon:
    """The running server: its parts (``wiring.py``), sockets and signals."""

    def __init__(
        self,
        settings: Settings,
        reload: SettingsLoader | None,
        sockets: list[socket.socket],
    ) -> None:
        self.reload_settings = reload
        self.sockets = sockets
        parts = wiring.build(settings)
        self.live = parts.live
        self.context = parts.context
        self.server = parts.http_server
        self.evictor = parts.evictor
        self.hasher = parts.hasher
        self.history_file = parts.history_file
        self.prefetcher = parts.prefetcher
        self.acceptor: Acceptor | None = None
        self._stop = asyncio.Event()

    @property
    def settings(self) -> Settings:
        return self.live.current

    async def run(self) -> None:
        # Before the slow work: the sockets already queue connections, and
        # a SIGHUP's default action would end the process.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            swept = self.context.store.prepare()
        except StoreError as error:
            raise StartupError(str(error)) from None
        if swept:
            log.warning("removed %d left-over partial files", swept)
        self.acceptor = listen(self.server, self.sockets)
        self.evictor.start()
        self.history_file.start()
        self.prefetcher.start()
        notice = notice_log()
        addresses = [address_of(s) for s in self.acceptor.sockets]
        notice.info(start_line(self.settings, self.context.store.root, addresses))
        for repository in self.settings.all_repositories:
            warning = missing_file_sources(repository)
            if warning:
                notice.warning("%s", warning)
        await self._stop.wait()
        await self.shutdown()

    def reload(self) -> None:
        """SIGHUP: apply a fresh reading of the config, or keep the old one."""
        if self.reload_settings is None:
            return
        try:
            new = self.reload_settings()
        except ConfigError as error:
            log.error("reload failed, keeping the old settings: %s", error)
            return
        ignored = self.live.swap(new)
        if ignored:
            log.warning(
                "reload: %s changed in the file but need a restart; "
                "still using the running values",
                ", ".join(ignored),
            )
        log.warning("reloaded settings: %s", repositories_line(new))

    async def shutdown(self) -> None:
        grace = self.settings.shutdown_grace
        notice = notice_log()
        notice.info("stopping: %d requests in flight", self.context.in_flight.count)
        if self.acceptor is not None:
            self.acceptor.stop()
        self.evictor.stop()
        self.prefetcher.stop()
        try:
            await asyncio.wait_for(self.context.in_flight.wait_idle(), grace)
        except TimeoutError:
            log.warning(
                "grace period over: closing %d requests", self.context.in_flight.count
            )
        try:
            await asyncio.wait_for(self.server.close_all_connections(), 5)
        except TimeoutError:
            log.warning("some connections did not close")
        self.hasher.shutdown()
        self.history_file.stop()
        # The curl client is left open: closing it under transfers still in
        # flight makes its pending timers fail; the process ends right after.
        removed = self.context.store.sweep()
        if removed:
            log.warning("removed %d partial files of unfinished downloads", removed)
        notice.info("package-cache %s stopped", __version__)


async def _serve(
    settings: Settings, reload: SettingsLoader | None, sockets: list[socket.socket]
) -> None:
    # Built inside the running loop: tornado's curl client and HTTP server
    # attach to the IOLoop that is current when they are created.
    await Daemon(settings, reload, sockets).run()


def run(settings: Settings, reload: SettingsLoader | None = None) -> int:
    """Run the server until a stop signal; returns the process exit code.

    ``reload`` re-reads the settings on SIGHUP (flags over config file).
    A start-up failure is one line on stderr (and in syslog when that is
    the log), said once.
    """
    try:
        setup_logging(settings)
        lock = lock_cache(settings)
        sockets = bind(settings)
        raise_descriptor_limit()
        asyncio.run(_serve(settings, reload, sockets))
    except CacheLocked as error:
        _startup_failed(settings, str(error))
        return EXIT_LOCKED
    except StartupError as error:
        _startup_failed(settings, str(error))
        return EXIT_FAILURE
    lock.release()
    return 0


def _startup_failed(settings: Settings, message: str) -> None:
    print(f"package-cache: error: {message}", file=sys.stderr)
    if settings.syslog and logging.getLogger().handlers:
        log.error("%s", message)
