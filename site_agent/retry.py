"""Bounded retry of upload requests while the relay is briefly out of reach (a restart, a
dropped connection): exponential backoff, about half a minute in all, then the error stands and
the user runs the same command again (it resumes).

Only `RelayUnreachable` is retried, and only for requests that are safe to repeat as they are
(completing an object, a manifest record, reading: the relay accepts an identical repeat). A
PATCH is not: `push` asks the relay for its offset before sending again. Creating a transfer is
not either: it is sent again only while it never reached the relay (`unsent_only`), so that a
lost answer never makes a second transfer. Each wait is announced
to `on_wait` first, so the person at the keyboard sees "retrying in N s", not a silent pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

from site_agent.errors import RelayUnreachable

T = TypeVar("T")

# Seconds to wait after each failed attempt: six attempts over about 30 s.
DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
LONGEST_WAIT = 15.0  # `backoff` waits no longer than this, so a relay back up is found soon

# Told of each wait before it starts: (seconds, the failure that made it necessary).
OnWait = Callable[[float, RelayUnreachable], None]


def delays() -> Iterator[float]:
    """The waits of one request's retries, in order; exhausted means give up."""
    return iter(DELAYS)


def backoff(seconds: float) -> tuple[float, ...]:
    """Waits of 1, 2, 4, 8, then 15 s each, adding up to at most `seconds` (none for 0)."""
    waits: list[float] = []
    wait = 1.0
    while sum(waits) + wait <= seconds:
        waits.append(wait)
        wait = min(wait * 2, LONGEST_WAIT)
    return tuple(waits)


async def retrying(
    call: Callable[[], Awaitable[T]],
    on_wait: OnWait | None = None,
    waits: Iterable[float] | None = None,
    *,
    unsent_only: bool = False,
) -> T:
    """`await call()`, again after each wait (`DELAYS` unless `waits` is given) while the relay
    cannot be reached; the last failure stands. `unsent_only`: for a request that is not safe
    to repeat, only while it never reached the relay (`RelayUnreachable.unsent`); a failure
    after it may have arrived stands at once."""
    for delay in delays() if waits is None else waits:
        try:
            return await call()
        except RelayUnreachable as e:
            if unsent_only and not e.unsent:
                raise
            if on_wait is not None:
                on_wait(delay, e)
            await asyncio.sleep(delay)
    return await call()
