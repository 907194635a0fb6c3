"""One process at a time runs the push jobs of a state folder: `trauma-relay sender` and
`trauma-relay sender console` on the same folder would both resume the same jobs. The first
holds an exclusive lock (`fcntl.flock`) on a file in the state folder, with its process id
written in it; the second is refused (`AgentAlreadyRunning`) saying which process holds it.
The lock ends with the process, however it ends (even killed), so there is nothing to clean."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

from sending_site.errors import AgentAlreadyRunning
from site_agent.local_state import site_folder

LOCK_NAME = "agent.lock"


def lock_file(state_dir: Path) -> Path:
    return site_folder(state_dir, "sending") / LOCK_NAME


def take(state_dir: Path) -> IO[str]:
    """Hold the state folder's lock until the returned file is closed; `AgentAlreadyRunning`
    naming the process that holds it."""
    path = lock_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    held = path.open("a+", encoding="ascii")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read().strip()
        held.close()
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise AgentAlreadyRunning(
            f"The sending agent's state folder {state_dir} is in use by {who} (a sending agent "
            "or ER console). Stop it first, or use that one; two would send the same studies."
        ) from None
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def holding(state_dir: Path) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp `cleanup_ctx` lifetime holding the lock while the app runs."""

    async def context(app: Any) -> AsyncIterator[None]:
        held = take(state_dir)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                held.close()

    return context
