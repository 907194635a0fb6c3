"""Guessing throttles across transfers. Each transfer already locks after ten wrong codes; these
keep one misbehaving client, or one leaked site credential, from spending the tries of every
transfer waiting for a trauma center, and from loading the relay.

Only failures count: a wrong proof for a redemption, a phone link that leads nowhere. An honest
typo never gets here (a wrong check symbol is refused on the trauma center's own machine), and a
right proof is never counted. When a key has had `failures` failures within the last `window`
seconds, its next attempt waits until the oldest of them leaves the window. An attempt under way
(`begin`, not yet `ended`) counts as a failure until it ends: a guesser who sends many at once,
without waiting for the answers, gets no more tries than one who waits (those past the limit are
told to try again in a moment, when the answers are in). Pure and in memory:
the caller says what time it is, and what the metadata store kept (`known`: every instance's
failures, and this process's from before a restart).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from relay.addresses import throttled_as


@dataclass(frozen=True)
class Limit:
    failures: int  # allowed within the window
    window: float  # seconds


UNDER_WAY_WAIT = 1.0  # seconds: an attempt under way is answered within about that

# Keys are "site:<name>", "address:<client address>", "link:<client address>" or GLOBAL.
GLOBAL = "global"
MAX_KEYS = 100_000  # keys remembered at once; the least recently failing are forgotten first


class Throttle:
    """Failures per key in a sliding window, with one limit per kind of key (the part of the
    key before the colon, or GLOBAL)."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self._limits = limits
        self._failures: dict[str, deque[float]] = {}
        self._under_way: dict[str, int] = {}  # attempts begun and not yet ended, by key

    @property
    def most_counted(self) -> int:
        """The most failures of one key that can decide anything: the highest limit."""
        return max((limit.failures for limit in self._limits.values()), default=0)

    def known(self, key: str, times: list[float], now: float) -> None:
        """The failures of `key` as counted by every instance sharing the relay's store (times,
        oldest first): they replace this process's own count of that key."""
        limit = self._limit(key)
        if limit is None:
            return
        self._failures.pop(key, None)
        recent = deque(t for t in times[-limit.failures :] if t > now - limit.window)
        if recent:
            self._failures[key] = recent
        while len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]

    def _limit(self, key: str) -> Limit | None:
        return self._limits.get(key.split(":", 1)[0])

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        limit = self._limit(key)
        while times and limit is not None and times[0] <= now - limit.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def begin(self, keys: list[str]) -> None:
        """An attempt of `keys` is under way: until it `ended`, it counts as if it failed now."""
        for key in keys:
            self._under_way[key] = self._under_way.get(key, 0) + 1

    def ended(self, keys: list[str]) -> None:
        """The attempt `begin` counted is over (any failure of it counted by `failed`)."""
        for key in keys:
            left = self._under_way.pop(key, 0) - 1
            if left > 0:
                self._under_way[key] = left

    def wait(self, keys: list[str], now: float, *, under_way: bool = True) -> float:
        """Seconds until all of `keys` may try again; 0 if they may now. Attempts under way
        count as failures, unless `under_way` is false: if only they make the limit, the wait is
        `UNDER_WAY_WAIT` (they may yet succeed, and end soon either way)."""
        longest = 0.0
        for key in keys:
            limit = self._limit(key)
            if limit is None:
                continue
            times = self._recent(key, now)
            if len(times) >= limit.failures:
                longest = max(longest, times[-limit.failures] + limit.window - now)
            elif under_way and len(times) + self._under_way.get(key, 0) >= limit.failures:
                longest = max(longest, UNDER_WAY_WAIT)
        return longest

    def failed(self, keys: list[str], now: float) -> None:
        """Count a failure against each of `keys`."""
        for key in keys:
            limit = self._limit(key)
            if limit is None:
                continue
            times = self._recent(key, now)
            times.append(now)
            while len(times) > limit.failures:  # older ones no longer decide anything
                times.popleft()
            self._failures.pop(key, None)
            self._failures[key] = times  # most recently failing last
        while len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]


def keys(address: str, site: str | None = None) -> list[str]:
    """The throttle keys of one attempt. A redemption (it comes with a site's credential) counts
    against its client address, its site and GLOBAL. A phone link (anyone may send one) counts
    against its client address alone, under its own kind: a link holds 240 random bits, so
    links that lead nowhere are load, not guessing, and letting strangers' links fill the
    relay-wide or an address's redemption count would let anyone stop every trauma center's
    redemptions and every family's link. An IPv6 address counts by its /64 (`throttled_as`)."""
    client = throttled_as(address)
    if site is None:
        return [f"link:{client}"]
    return [f"address:{client}", f"site:{site}", GLOBAL]
