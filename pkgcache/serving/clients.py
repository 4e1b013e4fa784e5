"""Who is asking, and may they: the client address through trusted
proxies, and ``allowed``, the one access check of every entry point.

Behind HAProxy or another package-cache, every connection comes from the
proxy. ``X-Forwarded-For`` is believed only when the connection comes
from a ``trusted_proxies`` network, and only as far back as the chain
stays trusted, so a client cannot claim another address by sending the
header itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from tornado.httputil import HTTPServerRequest

from pkgcache.settings import EVERYONE, IPNetwork


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_in(remote_ip: str | None, networks: Sequence[IPNetwork]) -> bool:
    """Is the client's address in one of ``networks``?"""
    address = _address(remote_ip or "")
    return address is not None and any(address in network for network in networks)


def resolve_client(request: HTTPServerRequest, trusted: Sequence[IPNetwork]) -> None:
    """Replace ``request.remote_ip`` by the forwarded client's address when
    the connection comes from a trusted proxy.

    It starts from the connection's own peer address, so calling it twice
    for one request (the small-hit check, then a handler) gives one answer.
    """
    context = getattr(request.connection, "context", None)
    peer = getattr(context, "remote_ip", None) or request.remote_ip
    request.remote_ip = peer
    if not trusted or not client_in(peer, trusted):
        return
    forwarded = request.headers.get_list("X-Forwarded-For")
    hops = [hop.strip() for value in forwarded for hop in value.split(",")]
    for hop in reversed(hops):
        if _address(hop) is None:
            return
        request.remote_ip = hop
        if not client_in(hop, trusted):
            return


def allowed(
    request: HTTPServerRequest,
    networks: Sequence[IPNetwork],
    trusted: Sequence[IPNetwork] = (),
) -> bool:
    """Is the client of ``request`` (the forwarded one, behind ``trusted``
    proxies) in ``networks``? Sets ``request.remote_ip`` to that client."""
    if trusted:
        resolve_client(request, trusted)
    if networks is EVERYONE:
        return True  # the default of allow needs no address parsing
    return client_in(request.remote_ip, networks)


#: A Host header we may put into URLs: a DNS name or an address, and a port.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def public_base(request: HTTPServerRequest, trusted: Sequence[IPNetwork]) -> str | None:
    """The URL this client reaches the cache at (``scheme://host[:port]``),
    for the absolute URLs a registry needs (npm's tarballs): the request's
    Host, or ``X-Forwarded-Host``/``-Proto`` when the connection comes from
    a trusted proxy. None when the host is missing or not a plain host
    name, so nothing a client sends can smuggle text into a document."""
    context = getattr(request.connection, "context", None)
    peer = getattr(context, "remote_ip", None) or request.remote_ip
    scheme = request.protocol if request.protocol in ("http", "https") else "http"
    host = request.headers.get("Host")
    if trusted and client_in(peer, trusted):
        forwarded_host = (
            request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        )
        forwarded_proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0]
        host = forwarded_host or host
        if forwarded_proto.strip().lower() in ("http", "https"):
            scheme = forwarded_proto.strip().lower()
    if not host or not _HOST.fullmatch(host):
        return None
    return f"{scheme}://{host}"
