"""Slow down password guessing: failed sign-ins are counted per user name and per address in a
sliding window; past the limit, sign-in for that name (or from that address) waits until the
oldest counted failure leaves the window. A sign-in under way (`begin`, not yet `ended`) counts
as a failure until it ends: a refused sign-in keeps its session and form token, so a guesser can
send many at once, and without this all of them would pass before the first failure is counted.
As in the relay's guessing throttle (`relay/throttle.py`, which the layering keeps `site_agent`
from importing). Pure (time passed in) and bounded in memory: at most `max_keys` names or
addresses are remembered, the least recently failing forgotten first.

The per-name limit stops guessing one account from many addresses; the per-address limit stops
trying many names from one. Neither locks anyone out for long: a nurse who mistyped waits
minutes, not until an administrator comes (NIST SP 800-63B-4 3.2.2 rate limiting).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MINUTES = 60.0
WINDOW = 15 * MINUTES
PER_USER = 10  # failures in WINDOW before a name must wait
PER_ADDRESS = 30  # failures in WINDOW before an address must wait
MAX_KEYS = 10_000
UNDER_WAY_WAIT = 1.0  # seconds: a password check under way ends within about that


@dataclass
class Window:
    limit: int
    seconds: float = WINDOW
    max_keys: int = MAX_KEYS
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    # Attempts begun and not yet ended, by key: as many as requests in progress, no more.
    _under_way: dict[str, int] = field(default_factory=dict)

    def begin(self, key: str) -> None:
        """An attempt of `key` is under way: until it `ended`, it counts as a failure."""
        self._under_way[key] = self._under_way.get(key, 0) + 1

    def ended(self, key: str) -> None:
        """The attempt `begin` counted is over (its failure, if it failed, counted already)."""
        left = self._under_way.pop(key, 0) - 1
        if left > 0:
            self._under_way[key] = left

    def failed(self, key: str, now: float) -> None:
        times = self._failures.pop(key, None) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[key] = times
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def wait(self, key: str, now: float) -> float:
        """Seconds before `key` may try again; 0 if it may now. If only attempts under way
        make the limit, `UNDER_WAY_WAIT` (they may yet succeed, and end soon either way)."""
        times = self._failures.get(key, deque())
        if len(times) >= self.limit and times[0] + self.seconds > now:
            return times[0] + self.seconds - now
        recent = sum(1 for t in times if t + self.seconds > now)
        if recent + self._under_way.get(key, 0) >= self.limit:
            return UNDER_WAY_WAIT
        return 0.0

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass
class SignInThrottle:
    users: Window = field(default_factory=lambda: Window(PER_USER))
    addresses: Window = field(default_factory=lambda: Window(PER_ADDRESS))

    def wait(self, user: str, address: str, now: float) -> float:
        """Seconds before this name from this address may try a password."""
        return max(self.users.wait(user, now), self.addresses.wait(address, now))

    def begin(self, user: str, address: str) -> None:
        """A password check for this name from this address is under way: it counts as a
        failure until it `ended` (call `failed` first if it failed)."""
        self.users.begin(user)
        self.addresses.begin(address)

    def ended(self, user: str, address: str) -> None:
        self.users.ended(user)
        self.addresses.ended(address)

    def failed(self, user: str, address: str, now: float) -> None:
        self.users.failed(user, now)
        self.addresses.failed(address, now)

    def succeeded(self, user: str) -> None:
        """The name's count starts again; the address's stays (it may be trying many names)."""
        self.users.forget(user)
