"""What ``pkgcache.tornado_internals`` relies on still exists in the
installed tornado: a release that renames these attributes fails here, not
as a silently slower (or broken) server."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
import tornado
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from pkgcache import tornado_internals


class Probe(RequestHandler):
    """Looks at its own connection the way the serving layer does."""

    seen: ClassVar[dict[str, Any]] = {}

    async def get(self) -> None:
        connection = self.request.connection
        Probe.seen["missing"] = tornado_internals.missing_internals(connection)
        self.set_header("Content-Length", "10")
        await self.flush()  # headers out, as before a sendfile or sendmsg
        Probe.seen["beside"] = tornado_internals.can_write_beside(connection)
        sent = tornado_internals.send_buffers(connection, [b"01234", b"56789"])
        Probe.seen["sent"] = sent
        if sent < 10:
            self.write(b"0123456789"[sent:])


async def _probe() -> tuple[bytes, list[bool]]:
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = HTTPServer(Application([("/", Probe)]))
    server.add_sockets(sockets)
    client = CurlAsyncHTTPClient(force_instance=True)
    queues: list[bool] = []
    try:
        response = await client.fetch(
            HTTPRequest(
                f"http://127.0.0.1:{port}/",
                streaming_callback=lambda _chunk: None,
                prepare_curl_callback=lambda curl: queues.append(
                    tornado_internals.set_stream_queue(curl, 4 << 20)
                ),
            )
        )
        body = await CurlAsyncHTTPClient(force_instance=True).fetch(
            f"http://127.0.0.1:{port}/"
        )
        assert response.code == 200
        return body.body, queues
    finally:
        client.close()
        server.stop()


@pytest.mark.smoke
def test_the_connection_internals_we_write_beside_still_exist():
    body, queues = asyncio.run(_probe())
    assert Probe.seen["missing"] == []
    assert Probe.seen["beside"] is True
    assert Probe.seen["sent"] == 10  # went out beside tornado, counted by it
    assert body == b"0123456789"
    if tornado.version_info >= (6, 6):
        # tornado 6.6 queues streamed bodies and pauses at 1 MiB.
        assert queues == [True]
