"""Code secrets stretched before their transfer exists (`keys.stretch_ahead`), in a thread:
scrypt does not hold the GIL, so it runs while the sender reads the study, or, in the agent,
between one push and the next.

    spare = SpareSecret()
    spare.prepare()                    # at start: the next transfer's code is stretched now
    request = PushRequest(..., stretched=spare.take())   # and the one after starts stretching

Each stretched secret goes to one push only, which uses it for one lock at most.
"""

from __future__ import annotations

import concurrent.futures

from transfer_codes.keys import StretchedSecret, stretch_ahead

Stretching = concurrent.futures.Future[StretchedSecret]


def in_background() -> Stretching:
    """A fresh code secret, being stretched in a thread of its own."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stretch")
    try:
        return pool.submit(stretch_ahead)
    finally:
        pool.shutdown(wait=False)


class SpareSecret:
    """The agent's next code secret, kept stretched (or being stretched) ahead of the push
    that needs it, so that staff see the code without waiting for scrypt. Called from one
    thread (the agent's event loop)."""

    def __init__(self) -> None:
        self._next: Stretching | None = None

    def prepare(self) -> Stretching:
        """The next secret: started stretching now, unless it is ready or under way."""
        if self._next is None:
            self._next = in_background()
        return self._next

    def take(self) -> Stretching:
        """The next secret, handed over for good, and another one started for the push after."""
        taken = self._next if self._next is not None else in_background()
        self._next = in_background()
        return taken
