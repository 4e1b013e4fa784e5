"""Start-up, reload and shutdown: logging, cache checks, listening, signals.

- SIGTERM / SIGINT: stop accepting, give in-flight responses
  ``shutdown_grace`` seconds, close the rest, remove the partial files of
  unfinished downloads, exit 0.
- SIGHUP: read the config file again; new settings apply from the next
  request (sources, timeouts, allow). A bad file is logged and the old
  settings stay. Address, port and cache folder need a restart.

Exit codes: 0 after a clean stop, 1 when the server cannot run (cache
folder unusable, port taken, no syslog socket). Usage errors (2) are
``cli.py``'s.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Callable

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from pkgcache import __version__
from pkgcache.app import make_app, make_context
from pkgcache.config import ConfigError, Settings
from pkgcache.download import Download
from pkgcache.eviction import Evictor
from pkgcache.handler import CacheContext
from pkgcache.store import StoreError

log = logging.getLogger("pkgcache")

EXIT_FAILURE = 1
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
#: Settings that only a restart can change.
_RESTART_ONLY = (
    "cache",
    "host",
    "port",
    "upstream_connections",
    "syslog",
    "cull_interval",
    "idle_timeout",
)
#: Host names meaning "every address, IPv4 and IPv6".
_EVERY_ADDRESS = ("::", "*", "")

SettingsLoader = Callable[[], Settings]


class StartupError(Exception):
    """The server cannot start; the message says why, in one line."""


def setup_logging(settings: Settings) -> None:
    """stderr by default, or syslog (facility daemon) as 0.2 did."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
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
    root.addHandler(handler)
    set_verbosity(settings)
    # tornado's own access log would repeat ours.
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)


def set_verbosity(settings: Settings) -> None:
    logging.getLogger().setLevel(_LEVELS[min(settings.verbose, len(_LEVELS) - 1)])


#: Connections the kernel queues before we accept them. tornado's 128
#: drops SYNs when a build farm connects at once (clients then wait for a
#: retransmit, 1 s or more); nginx uses 511. The kernel caps it at
#: net.core.somaxconn.
LISTEN_BACKLOG = 1024


def listen(server: HTTPServer, settings: Settings) -> list[socket.socket]:
    """Bind every configured address; all or nothing."""
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
    server.add_sockets(sockets)
    return sockets


class Daemon:
    """The running server: its context, its HTTP server, its signals."""

    def __init__(self, settings: Settings, reload: SettingsLoader | None) -> None:
        self.settings = settings
        self.reload_settings = reload
        self.context: CacheContext = make_context(settings)
        self.server = HTTPServer(
            make_app(self.context),
            xheaders=False,
            idle_connection_timeout=settings.idle_timeout,
        )
        self.evictor = Evictor(self.context)
        self.context.downloads.on_begin.append(self._make_room)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        try:
            swept = self.context.store.prepare()
        except StoreError as error:
            raise StartupError(str(error)) from None
        if swept:
            log.warning("removed %d left-over partial files", swept)
        sockets = listen(self.server, self.settings)
        self.evictor.start()
        log.warning(
            "package-cache %s serving %s on %s from %s",
            __version__,
            self.context.store.root,
            ", ".join(_address(s) for s in sockets),
            " ".join(self.settings.sources),
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self._stop.wait()
        await self.shutdown()

    def _make_room(self, download: Download) -> None:
        size = download.head.content_length if download.head else None
        if size:
            self.evictor.make_room(size, self.context.store.final_path(download.key))

    def reload(self) -> None:
        """SIGHUP: apply a fresh reading of the config, or keep the old one."""
        if self.reload_settings is None:
            return
        try:
            new = self.reload_settings()
        except ConfigError as error:
            log.error("reload failed, keeping the old settings: %s", error)
            return
        ignored = [
            key
            for key in _RESTART_ONLY
            if getattr(new, key) != getattr(self.settings, key)
        ]
        if ignored:
            log.warning("reload: %s change only after a restart", ", ".join(ignored))
            changes = {key: getattr(self.settings, key) for key in ignored}
            new = new.replace(**changes)
        self.settings = new
        self.context.apply(new)
        set_verbosity(new)
        log.warning("reloaded settings; sources: %s", " ".join(new.sources))

    async def shutdown(self) -> None:
        grace = self.settings.shutdown_grace
        log.warning("stopping: %d requests in flight", self.context.in_flight.count)
        self.server.stop()
        self.evictor.stop()
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
        # The curl client is left open: closing it under transfers still in
        # flight makes its pending timers fail; the process ends right after.
        removed = self.context.store.prepare()
        if removed:
            log.warning("removed %d partial files of unfinished downloads", removed)


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _serve(settings: Settings, reload: SettingsLoader | None) -> None:
    # Built inside the running loop: tornado's curl client and HTTP server
    # attach to the IOLoop that is current when they are created.
    await Daemon(settings, reload).run()


def run(settings: Settings, reload: SettingsLoader | None = None) -> int:
    """Run the server until a stop signal; returns the process exit code.

    ``reload`` re-reads the settings on SIGHUP (flags over config file).
    """
    try:
        setup_logging(settings)
        asyncio.run(_serve(settings, reload))
    except StartupError as error:
        print(f"package-cache: error: {error}", file=sys.stderr)
        log.error("%s", error)
        return EXIT_FAILURE
    return 0
