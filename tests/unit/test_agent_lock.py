"""The state folder's lock: the second taker is refused, naming the holder's process id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sending_site.agent import lock
from sending_site.errors import AgentAlreadyRunning


def test_the_lock_is_held_once_and_names_its_holder(tmp_path: Path) -> None:
    held = lock.take(tmp_path)
    try:
        with pytest.raises(AgentAlreadyRunning, match=f"in use by process {os.getpid()} "):
            lock.take(tmp_path)
    finally:
        held.close()
    lock.take(tmp_path).close()  # free again once closed
