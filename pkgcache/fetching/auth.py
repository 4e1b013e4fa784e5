"""Upstream authorization: what a route's sources want besides the path.

Some sources answer 401 with a ``WWW-Authenticate`` challenge until a
request carries the credentials they asked for (a container registry's
Bearer token, a Basic password). A ``Route`` may name an ``Authorizer``:
each attempt asks it for headers first (a token it already holds), and a
401 with a challenge is handed to it; when it says it can now answer,
the attempt is made once more (``upstream.Upstream``). What a challenge
means and where tokens come from is the authorizer's own business
(``registries/ocitokens.py``); fetching only asks.

``fetch_small`` is the one helper an authorizer needs from the network:
a small body (a token) over the same ``Transport`` the downloads use,
bounded in size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pkgcache.fetching.transport import Transport, TransportRequest

#: Largest body ``fetch_small`` keeps (a token response is a few KiB).
SMALL_BODY_LIMIT = 256 * 1024


class Authorizer(Protocol):
    """Headers for a source's requests, and what to do with its 401s."""

    def headers(self, url: str) -> dict[str, str]:
        """Headers to send with a request for ``url`` (a token held for
        it); empty when there is none yet. Never blocks."""
        ...

    async def challenged(self, url: str, challenge: str) -> bool:
        """``url`` was answered 401 with ``challenge`` (the
        ``WWW-Authenticate`` value): get what it asks for. True when a
        retry may now succeed (``headers`` has something new for it)."""
        ...


@dataclass(frozen=True)
class SmallResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Why no response came (or the body was too large); "" otherwise.
    error: str = ""


async def fetch_small(
    transport: Transport,
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float = 10.0,
    stall_timeout: float = 30.0,
    user_agent: str = "",
    ca_file: str | None = None,
) -> SmallResponse:
    """GET ``url`` and keep its body whole, at most ``SMALL_BODY_LIMIT``
    bytes (past that the transfer is stopped and ``error`` says so)."""
    chunks: list[bytes] = []
    size = 0
    too_large = False

    def on_chunk(chunk: bytes) -> None:
        nonlocal size, too_large
        size += len(chunk)
        if size > SMALL_BODY_LIMIT:
            too_large = True
        else:
            chunks.append(chunk)

    result = await transport.fetch(
        TransportRequest(
            url=url,
            method="GET",
            headers={"Accept-Encoding": "identity", **headers},
            on_header_line=lambda _line: None,
            on_chunk=on_chunk,
            should_abort=lambda: too_large,
            connect_timeout=connect_timeout,
            stall_timeout=stall_timeout,
            user_agent=user_agent,
            ca_file=ca_file,
        )
    )
    if too_large:
        return SmallResponse(0, {}, b"", f"larger than {SMALL_BODY_LIMIT} bytes")
    if result.error is not None or result.status is None:
        return SmallResponse(0, {}, b"", str(result.error or "no response"))
    found = result.headers if result.headers is not None else {}
    return SmallResponse(result.status, found, b"".join(chunks))
