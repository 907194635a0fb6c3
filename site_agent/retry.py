"""Bounded retry of upload requests while the relay is briefly out of reach (a restart, a
dropped connection): exponential backoff, about half a minute in all, then the error stands and
the user runs the same command again (it resumes).

Only `RelayUnreachable` is retried, and only for requests that are safe to repeat as they are
(completing an object, a manifest record: the relay accepts an identical repeat). A PATCH is
not: `push` asks the relay for its offset before sending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from site_agent.errors import RelayUnreachable

T = TypeVar("T")

# Seconds to wait after each failed attempt: six attempts over about 30 s.
DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)


def delays() -> Iterator[float]:
    """The waits of one request's retries, in order; exhausted means give up."""
    return iter(DELAYS)


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, again after each wait in `DELAYS` while the relay cannot be reached."""
    for delay in delays():
        try:
            return await call()
        except RelayUnreachable:
            await asyncio.sleep(delay)
    return await call()
