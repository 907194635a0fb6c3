"""Exclusive locks between the agents' processes: a lock file in a state folder, held with
`flock`. The kernel releases it when its holder closes it or dies (even killed), so there is
nothing to clean. The file is left in place: removing it while another process holds it open
would let a third take a second lock on a new file of the same name."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.2  # how often a waiting task tries the lock again (a sleep is cancellable)


class LockFileUnusable(Exception):
    """The lock file, or its folder, could not be made or opened; `cause` is the OSError."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(f"{path}: {cause.strerror or cause}")
        self.path = path
        self.cause = cause


def _open(path: Path) -> int:
    """The lock file's descriptor, created 0600 in a folder created 0700. `LockFileUnusable`
    if it cannot be (told apart from what fails once it is held)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise LockFileUnusable(path, e) from e


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the lock on `path` for the block, waiting (blocking) while another holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.asynccontextmanager
async def waited_for(path: Path, on_wait: Callable[[], None] = lambda: None) -> AsyncIterator[None]:
    """Hold the lock on `path` for the block without blocking the loop: while another holds
    it, `on_wait()` is called once and the lock is tried again every `POLL_SECONDS` (the wait
    can be cancelled, and leaves nothing behind)."""
    fd = _open(path)
    try:
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    on_wait()
                    waiting = True
                await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # releases the lock
