"""The client's address behind a trusted proxy: the right-most forwarded hop that is not a
trusted proxy; from anyone else, the peer itself (their header is theirs to forge)."""

from __future__ import annotations

import pytest

from relay.addresses import client_address, is_loopback, networks

PROXIES = networks(["127.0.0.1", "10.0.0.0/24"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "", "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted proxy: ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the left part is forgeable
        ("127.0.0.1", "198.51.100.7, 10.0.0.3", "198.51.100.7"),  # through two proxies
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", "10.0.0.4", "127.0.0.1"),  # only proxies: the peer
        (None, "198.51.100.7", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str, client: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address("127.0.0.1", "198.51.100.7", ()) == "127.0.0.1"


def test_bad_networks_are_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        networks(["relay.example"])


def test_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert not is_loopback("198.51.100.7")
    assert not is_loopback("unknown")
