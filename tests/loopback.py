"""A tornado server of the tests' own on a 127.0.0.1 ephemeral port, run
in a thread with an event loop of its own: the base of the test origins.
A subclass builds its application (``make_app``); ``start`` returns once
it listens, ``stop`` closes the listening socket and every open
connection (later connections are refused, as from a mirror that is
gone) and stops the loop. Stopping twice is harmless."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets


class LoopbackServer:
    #: What ``start`` says when the server does not come up.
    what = "test server"

    def __init__(self, ssl_options: Any = None) -> None:
        self.port = 0
        self._ssl_options = ssl_options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: HTTPServer | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_options is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def make_app(self) -> tornado.web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        threading.Thread(target=self._thread, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.what} did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        self._server, server = None, self._server

        async def close() -> None:
            server.stop()
            await server.close_all_connections()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        server = self._server = HTTPServer(
            self.make_app(), ssl_options=self._ssl_options
        )
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server.add_sockets(sockets)
        self._ready.set()
        self._loop.run_forever()
