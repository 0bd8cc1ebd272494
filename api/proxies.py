"""Who the client is and whether it used https, believing forwarded headers only from trusted proxies.

Behind a TLS-terminating reverse proxy every request arrives from the proxy over plain http; the
proxy says who the client was (``X-Forwarded-For``) and how it connected (``X-Forwarded-Proto``).
Those headers are believed only when the TCP peer is listed in ``GRIDMKT_TRUSTED_PROXIES``:
otherwise any client could claim another address (and slip past the per-address sign-in limit).
``gridmkt serve`` runs uvicorn with its own proxy-header handling off, so this is the only place
that reads them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from fastapi import Request

from api.settings import ProxySettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def client_address(request: Request, proxies: ProxySettings) -> str:
    """The client's address: the TCP peer, or from ``X-Forwarded-For`` when the peer is a trusted proxy
    (the right-most hop that is not itself a trusted proxy)."""
    peer = _peer(request)
    networks = _networks(proxies.trusted)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    address = peer
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # garbage from before the trusted chain: the last good hop is the client
        if not _trusted(address, networks):
            break
    return address


def client_scheme(request: Request, proxies: ProxySettings) -> str:
    """``https`` or ``http`` as the client connected: ``X-Forwarded-Proto`` from a trusted proxy,
    otherwise the connection's own scheme."""
    networks = _networks(proxies.trusted)
    if networks and _trusted(_peer(request), networks):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return request.url.scheme
