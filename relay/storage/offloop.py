"""Blocking calls in a worker thread, never on the event loop, such that a cancelled caller
still waits for the thread it started: a descriptor (or a database connection) is used by one
thread at a time, and nothing it does lands after the caller's lock is released."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def off_loop(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, but a cancelled caller still waits for the thread to finish before
    the cancellation goes on (the thread cannot be stopped, and it may hold a descriptor)."""
    return await acquire_off_loop(None, func, *args, **kwargs)


async def acquire_off_loop(
    release: Callable[[T], object] | None,
    func: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """As `off_loop`, for a `func` that opens something: if the caller was cancelled, what
    the thread opened anyway is given to `release` instead of being leaked."""
    task = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled() and task.exception() is None and release is not None:
            release(task.result())
        raise
