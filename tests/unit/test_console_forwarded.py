"""Where a console request comes from behind a trusted proxy: the right-most forwarded hop
that is not a trusted proxy; from anyone else, the peer itself (their header is theirs to
forge)."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from site_agent.console.forwarded import client_address

PROXIES = (ip_network("127.0.0.1"), ip_network("10.0.0.0/24"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "", "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted proxy: ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the left part is forgeable
        ("127.0.0.1", "198.51.100.7, 10.0.0.3", "198.51.100.7"),  # through two proxies
        ("127.0.0.1", "6.6.6.6,198.51.100.7", "198.51.100.7"),  # two fields, joined
        ("127.0.0.1", "2001:DB8:0::7", "2001:db8::7"),  # one address, one spelling
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", "198.51.100.7, not-an-address", "127.0.0.1"),
        ("127.0.0.1", "10.0.0.4", "127.0.0.1"),  # only proxies: the peer
        (None, "198.51.100.7", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str, client: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address("127.0.0.1", "198.51.100.7", ()) == "127.0.0.1"
