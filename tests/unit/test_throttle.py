"""The guessing throttle: failures per key in a sliding window; only failures count."""

from __future__ import annotations

import pytest

from relay.addresses import throttled_as
from relay.errors import Throttled
from relay.throttle import GLOBAL, MAX_KEYS, UNDER_WAY_WAIT, Limit, Throttle, keys

LIMITS = {
    "site": Limit(3, 60),
    "address": Limit(5, 60),
    "link": Limit(5, 60),
    GLOBAL: Limit(8, 60),
}


def test_a_key_waits_once_its_failures_fill_the_window() -> None:
    t = Throttle(LIMITS)
    k = keys("10.0.0.1", "county-trauma")
    for second in range(3):
        assert t.wait(k, 100 + second) == 0
        t.failed(k, 100 + second)
    # the three failures at 100, 101, 102: the oldest leaves the window at 160
    assert t.wait(k, 110) == pytest.approx(50)
    assert t.wait(k, 159.5) == pytest.approx(0.5)
    assert t.wait(k, 160) == 0


def test_attempts_under_way_count_until_they_end() -> None:
    t = Throttle(LIMITS)
    k = keys("10.0.0.1", "county-trauma")
    t.failed(k, 100)
    t.begin(k)
    t.begin(k)
    # one failure and two attempts not yet answered make the site's three: wait for the answers
    assert t.wait(k, 100) == UNDER_WAY_WAIT
    assert t.wait(k, 100, under_way=False) == 0
    t.failed(k, 100)
    t.ended(k)
    t.ended(k)  # the other one succeeded
    assert t.wait(k, 100) == 0
    t.begin(k)
    t.failed(k, 101)
    t.ended(k)
    assert t.wait(k, 101) == pytest.approx(59)  # the failures alone fill the window


def test_one_site_failing_does_not_slow_another_or_another_address() -> None:
    t = Throttle(LIMITS)
    for second in range(3):
        t.failed(keys("10.0.0.1", "guessing-site"), second)
    assert t.wait(keys("10.0.0.1", "guessing-site"), 3) > 0
    assert t.wait(keys("10.0.0.2", "county-trauma"), 3) == 0
    # the address is shared, but its own limit (5) is not reached yet
    assert t.wait(keys("10.0.0.1", "county-trauma"), 3) == 0


def test_an_address_is_limited_across_sites_and_the_relay_as_a_whole() -> None:
    t = Throttle(LIMITS)
    for n in range(5):
        t.failed(keys("10.0.0.9", f"site-{n}"), n)
    assert t.wait(keys("10.0.0.9", "site-new"), 5) > 0
    assert t.wait(keys("10.0.0.8", "site-new"), 5) == 0
    for n in range(3):
        t.failed(keys(f"10.1.0.{n}", f"other-{n}"), 5 + n)
    assert t.wait(keys("10.2.0.1", "fresh"), 8) > 0  # 8 failures relay-wide
    assert t.wait(keys("10.2.0.1", "fresh"), 61) == 0


def test_links_that_lead_nowhere_count_apart_from_redemptions() -> None:
    """Anyone may send a phone link: links that lead nowhere throttle the address that sent
    them, and neither that address's redemptions nor the relay-wide limit."""
    t = Throttle(LIMITS)
    for n in range(20):
        t.failed(keys(f"10.3.0.{n % 4}"), n)
    assert t.wait(keys("10.3.0.0"), 20) > 0
    assert t.wait(keys("10.3.0.9"), 20) == 0
    assert t.wait(keys("10.3.0.0", "county-trauma"), 20) == 0


def test_memory_is_bounded() -> None:
    t = Throttle({"address": Limit(2, 3600)})
    for n in range(MAX_KEYS + 10):
        t.failed([f"address:{n}"], 0)
    assert t.wait(["address:0"], 1) == 0  # forgotten, the oldest first
    t.failed([f"address:{MAX_KEYS + 9}"], 1)
    assert t.wait([f"address:{MAX_KEYS + 9}"], 2) > 0


def test_what_other_instances_counted_replaces_this_ones_count_of_a_key() -> None:
    t = Throttle(LIMITS)
    k = keys("10.0.0.1", "county-trauma")
    t.failed(k, 100)  # this instance saw one failure of the site
    assert t.most_counted == 8
    # every instance together: three of the site's within the window, one long before
    t.known("site:county-trauma", [10.0, 100.0, 101.0, 102.0], 110)
    assert t.wait(k, 110) == pytest.approx(50)  # the oldest of the three leaves at 160
    t.known("site:county-trauma", [], 110)  # none any more (the window moved on elsewhere)
    assert t.wait(k, 110) == 0
    t.known("unknown-kind:x", [100.0], 110)  # a key without a limit is not kept
    assert t.wait(["unknown-kind:x"], 110) == 0


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_is_counted_by_its_network(address: str, counted_as: str) -> None:
    """A phone or a household is given a whole IPv6 /64 and may send from any address in it:
    counted by address, each guess could come from a new one."""
    assert throttled_as(address) == counted_as


def test_guesses_from_many_addresses_of_one_ipv6_network_are_throttled_together() -> None:
    t = Throttle(LIMITS)
    for n in range(5):
        t.failed(keys(f"2001:db8:1:2::{n + 1:x}", f"site-{n}"), n)
    assert t.wait(keys("2001:db8:1:2::ffff", "site-new"), 5) > 0
    assert t.wait(keys("2001:db8:1:3::1", "site-new"), 5) == 0


def test_a_short_wait_is_said_in_seconds_not_as_a_minute() -> None:
    """Attempts sent at once are told to wait about a second (`UNDER_WAY_WAIT`), not a minute."""
    short = Throttled(UNDER_WAY_WAIT, ["site"])
    assert short.retry_after == 1
    assert "Try again in a few seconds;" in short.detail
    assert "Try again in 10 minutes;" in Throttled(600, ["site"]).detail
