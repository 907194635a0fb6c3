"""The count of images the PACS has accepted, told from the C-STORE threads to the event loop.

Each stored image would otherwise wake the loop and be told on its own; a wake-up and an event
per image cost the loop more than the count is worth. Here the loop is woken once for all the
counts that come before it takes them, and is told the latest."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class StoredCount:
    """`put(done, total)` from any thread; `tell(done, total)` runs on `loop`, once per wake-up,
    with the latest count put before it ran, never fewer images than told before. `reached` is the
    most images accepted so far."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tell: Callable[[int, int], None]) -> None:
        self._loop = loop
        self._tell = tell
        self._lock = threading.Lock()
        self._latest: tuple[int, int] | None = None  # put, not told yet
        self._reached = 0

    @property
    def reached(self) -> int:
        with self._lock:
            return self._reached

    def put(self, done: int, total: int) -> None:
        with self._lock:
            waking = self._latest is None
            self._reached = max(self._reached, done)
            self._latest = (self._reached, total)  # threads may put theirs out of order
        if waking:
            self._loop.call_soon_threadsafe(self._told)

    def _told(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is not None:
            self._tell(*latest)
