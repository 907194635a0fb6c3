"""Who is asking, by address: the peer, or, when the peer is a TLS-terminating proxy the
operator trusts (`trusted_proxies`), the client the proxy names in X-Forwarded-For (the
right-most address that is not itself a trusted proxy; anything to its left the client could
have written). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """`trusted_proxies` as networks ("10.0.0.5", "10.0.0.0/24", "::1"); ValueError if one is
    not an address or network."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts)


def within(address: str, trusted: tuple[Network, ...]) -> bool:
    """Whether `address` is in one of the networks `trusted`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The client's address for a request from `peer` carrying `forwarded_for`."""
    if not peer:
        return "unknown"
    if not within(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a damaged header: the proxy itself is all we know
        if not within(hop, trusted):
            return hop
    return peer


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def throttled_as(address: str) -> str:
    """What the guessing throttles count `address` as: an IPv4 address itself; an IPv6 address
    by its /64, the network one household or one phone is given (a client can take any of its
    2^64 addresses, so counting each alone would throttle nothing); an IPv4-mapped one as its
    IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
