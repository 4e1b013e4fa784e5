"""Reference servers for the small-hit benchmark (W3).

``python bench/refservers.py bare PORT`` answers every GET with the same
16 KiB from memory: the ceiling of a tornado handler. ``static PORT ROOT``
is tornado's plain ``StaticFileHandler`` on ROOT.
"""

from __future__ import annotations

import asyncio
import sys

import tornado.web

BODY = b"x" * 16384


class BareHandler(tornado.web.RequestHandler):
    def get(self, _path: str) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(BODY)


async def main(kind: str, port: int, root: str = ".") -> None:
    if kind == "bare":
        app = tornado.web.Application([(r"/(.*)", BareHandler)])
    else:
        app = tornado.web.Application(
            [(r"/(.*)", tornado.web.StaticFileHandler, {"path": root})]
        )
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))
