"""Fetches over DICOMweb (WADO-RS) the ER console starts, run in the agent in the background:
the images go into the inbox as they come, so the study is listed (and can be sent, its push
following it) while it still arrives, and the fetch's page shows how far it is and how it
ended. Held in memory only: a fetch stopped with the agent is started again from the console,
and what it had kept stays kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sending_site.inbox.errors import InboxError
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.pacs import Retrieval
from sending_site.inbox.wado import Progress

LOGGER = logging.getLogger(__name__)
KEPT = 50  # fetches remembered for their pages; the oldest ended ones are forgotten first


@dataclass
class Fetch:
    fetch_id: str
    study_instance_uid: str
    started_by: str
    started_at: float
    progress: Progress = field(default_factory=Progress)
    retrieval: Retrieval | None = None
    problem: str = ""  # why it stopped, in words for staff

    @property
    def running(self) -> bool:
        return self.retrieval is None and not self.problem


class Fetches:
    """The console's fetches, and the inbox they keep into (`opened` by the inbox while it
    serves; None when the console runs without it)."""

    def __init__(self) -> None:
        self.keeper: Keeper | None = None
        self._fetches: dict[str, Fetch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def opened(self, keeper: Keeper | None) -> None:
        self.keeper = keeper

    def get(self, fetch_id: str) -> Fetch | None:
        return self._fetches.get(fetch_id)

    def start(
        self,
        uid: str,
        user: str,
        run: Callable[[Progress], Coroutine[Any, Any, Retrieval]],
        ended: Callable[[Fetch], Coroutine[Any, Any, None]],
    ) -> Fetch:
        """Run `run(progress)` in the background; `ended(fetch)` once it has (audit)."""
        fetch = Fetch(secrets.token_hex(8), uid, user, time.time())
        self._forget_old()
        self._fetches[fetch.fetch_id] = fetch

        async def background() -> None:
            try:
                fetch.retrieval = await run(fetch.progress)
            except InboxError as e:
                fetch.problem = e.message
            except asyncio.CancelledError:
                fetch.problem = "The agent stopped during the fetch. Fetch the study again."
                await ended(fetch)
                raise
            except Exception:
                LOGGER.exception("The fetch %s stopped.", fetch.fetch_id)
                fetch.problem = (
                    "The fetch stopped on an unexpected error (see the agent's log). Fetch it "
                    "again: the images already received are kept."
                )
            await ended(fetch)

        task = asyncio.create_task(background(), name=f"fetch-{fetch.fetch_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fetch

    def _forget_old(self) -> None:
        ended = sorted(
            (f for f in self._fetches.values() if not f.running), key=lambda f: f.started_at
        )
        for old in ended[: max(0, len(self._fetches) - KEPT + 1)]:
            del self._fetches[old.fetch_id]

    async def stop(self) -> None:
        """Cancel the running fetches (before the inbox closes)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
