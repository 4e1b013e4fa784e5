"""Start-up and shutdown: logging, cache checks, listening, signals.

Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 1 when the server
cannot run (cache folder unusable, port taken, no syslog socket).
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
import socket
import sys

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from pkgcache import __version__
from pkgcache.app import make_app, make_context
from pkgcache.config import Settings
from pkgcache.store import StoreError

log = logging.getLogger("pkgcache")

EXIT_FAILURE = 1
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


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
    level = _LEVELS[min(settings.verbose, len(_LEVELS) - 1)]
    root.setLevel(level)
    # tornado's own access log would repeat ours.
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)


def listen(server: HTTPServer, settings: Settings) -> list[socket.socket]:
    try:
        sockets = bind_sockets(settings.port, settings.host or None)
    except OSError as error:
        raise StartupError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror}"
        ) from None
    server.add_sockets(sockets)
    return sockets


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    context = make_context(settings)
    try:
        swept = context.store.prepare()
    except StoreError as error:
        raise StartupError(str(error)) from None
    if swept:
        log.warning("removed %d left-over partial files", swept)
    server = HTTPServer(make_app(context), xheaders=False)
    sockets = listen(server, settings)
    addresses = ", ".join(_address(s) for s in sockets)
    log.warning(
        "package-cache %s serving %s on %s from %s",
        __version__,
        context.store.root,
        addresses,
        " ".join(settings.sources),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.warning("stopping")
    server.stop()
    context.upstream.close()
    context.store.prepare()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(settings: Settings) -> int:
    """Run the server; returns the process exit code."""
    try:
        setup_logging(settings)
        asyncio.run(serve(settings))
    except StartupError as error:
        print(f"package-cache: error: {error}", file=sys.stderr)
        log.error("%s", error)
        return EXIT_FAILURE
    return 0
