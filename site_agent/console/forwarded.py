"""Where a request comes from: the peer, or, when the peer is a proxy the operator trusts
(`console.trusted_proxies`), the client that proxy names in X-Forwarded-For: the right-most
address that is not itself a trusted proxy (anything to its left the client could have
written). Pure.

The relay reads the header the same way (`relay/addresses.py`). The layering keeps
`site_agent` from importing the relay, and the one package both may import, `transfer_codes`,
holds the codes, keys and formats of a transfer, not how HTTP names a client: this short
function is written twice rather than given a package of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from site_agent.settings.kinds import Network

UNKNOWN = "unknown"


def client_address(peer: str | None, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client's address for a request from `peer` carrying `forwarded_for` (every
    X-Forwarded-For field, joined by commas, in the order received); "unknown" without a peer.
    A forwarded address is written as `ipaddress` writes it, so that one address is counted
    once by the sign-in throttle however the header spells it."""
    if not peer:
        return UNKNOWN
    if not _within(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a damaged header: the proxy itself is all we know
        if not any(address in network for network in trusted):
            return str(address)
    return peer


def _within(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
