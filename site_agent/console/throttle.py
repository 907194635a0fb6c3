"""Slow down password guessing: failed sign-ins are counted per user name and per address in a
sliding window; past the limit, sign-in for that name (or from that address) waits until the
oldest counted failure leaves the window. Pure (time passed in) and bounded in memory: at most
`max_keys` names or addresses are remembered, the least recently failing forgotten first.

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


@dataclass
class Window:
    limit: int
    seconds: float = WINDOW
    max_keys: int = MAX_KEYS
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def failed(self, key: str, now: float) -> None:
        times = self._failures.pop(key, None) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[key] = times
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def wait(self, key: str, now: float) -> float:
        """Seconds before `key` may try again; 0 if it may now."""
        times = self._failures.get(key)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.seconds - now)

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

    def failed(self, user: str, address: str, now: float) -> None:
        self.users.failed(user, now)
        self.addresses.failed(address, now)

    def succeeded(self, user: str) -> None:
        """The name's count starts again; the address's stays (it may be trying many names)."""
        self.users.forget(user)
