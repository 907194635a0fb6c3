"""Group commit: images arriving together share one flush of the spool folder and one index
transaction, and each is answered only once both are durable.

Each C-STORE handler submits its image and waits for the outcome. The first submission starts
a commit at once; those that arrive while it runs (other associations, answering back to back)
wait for the next one, which takes them all, up to `max_batch`. No timer: an image alone is
committed as soon as it comes, and a busy inbox batches by itself, as many as arrived during
one commit (the leader/follower group commit of databases and journaling file systems).

Runs on the asyncio loop; pynetdicom's threads reach `submit` through
`asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

MAX_BATCH = 64  # images per commit: bounds how long the last of a batch waits


class GroupCommit(Generic[Item, Outcome]):
    """Batch `submit`ted items into calls of `commit(items) -> outcomes` (one outcome per
    item, in order), one call at a time. If `commit` raises, every item of that batch gets
    the exception (nothing of the batch may be taken as durable)."""

    def __init__(
        self,
        commit: Callable[[Sequence[Item]], Awaitable[Sequence[Outcome]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        """`item`'s outcome once the commit that took it has returned."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_while_waiting())
        return await future

    async def _commit_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    outcomes = await self._commit([item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
                except Exception as e:  # nothing of this batch may be taken as durable
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                except BaseException:
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # a waiter that gave up was cancelled
                        future.set_result(outcome)
        finally:
            self._committer = None
            for _, future in self._waiting:  # only after a cancellation: nothing was done
                future.cancel()
            self._waiting.clear()
