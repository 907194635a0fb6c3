"""One run at a time per code on this machine.

Two runs of the same code sharing a state folder (a double click, two staff at one workstation)
would stage into the same folder and clean it up under each other. So a run first takes an
exclusive lock on `lock-<slot>` in the state folder (the code's locator, or the transfer id of
a QR or `--resume`, unless this machine redeemed that transfer with its code: then the code's
locator, `state.slot_of`; `flock`, released by the kernel if the process dies), and the others
wait for it. When their turn comes they find what it did: delivered (`state.delivery`), or stopped
with what a second run needs to continue.

Lock files are left in place: removing one while another run holds it open would let a third
take a second lock on a new file of the same name.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from receiving_site import errors, state
from site_agent import file_lock


@contextlib.asynccontextmanager
async def turn(state_dir: Path, slot: str, on_wait: Callable[[], None]) -> AsyncIterator[None]:
    """Hold the lock of `slot` for the body; `on_wait()` is called once if another run holds
    it, before waiting for it. Raises `ReceivingError` if the state folder cannot be used."""
    async with contextlib.AsyncExitStack() as stack:
        path = state.folder(state_dir) / state.slot_file("lock", slot)
        lock = file_lock.waited_for(path, on_wait)
        try:
            await stack.enter_async_context(lock)
        except file_lock.LockFileUnusable as e:
            why = e.cause.strerror or e.cause
            raise errors.ReceivingError(
                f"This machine's state folder {state_dir} cannot be used ({why}); "
                "nothing was done and the code has not been used. Check its permissions, or "
                "give another with --state."
            ) from e
        yield
