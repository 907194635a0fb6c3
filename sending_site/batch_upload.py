"""Small whole objects gathered into batch uploads (`RelayClient.upload_batch`): most of what a
small image costs the relay, and this agent, is per request. A batch goes as soon as one of
`SLOTS` requests is free, so a quiet study sends each image at once and a busy one sends what
piled up meanwhile; what waits is bounded (`QUEUE_BYTES`), and a full queue holds back the
sealing of more.

Objects are acknowledged, and told to their senders, only when the batch's answer says all of
them are complete. A batch the relay refuses (an older relay without batches, or part of one
object held from an earlier run) fails its objects with that refusal; their senders then send
each on its own, which resumes from what the relay holds."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from site_agent import retry
from site_agent.client import RelayClient
from transfer_codes import wire

SMALL_OBJECT = 1024 * 1024  # sealed objects of at most this size go in batches
BATCH_BYTES = 4 * 1024 * 1024  # a batch is sent once it holds this much (the relay allows more)
QUEUE_BYTES = 8 * 1024 * 1024  # sealed bytes waiting for a request
SLOTS = 2  # batch requests at once


@dataclass
class _Waiting:
    index: int
    sealed: bytes
    sha256: str
    done: asyncio.Future[None]


class BatchUploads:
    def __init__(self, client: RelayClient, transfer_id: str, on_wait: retry.OnWait) -> None:
        self.client = client
        self.transfer_id = transfer_id
        self.on_wait = on_wait
        self.enabled = True  # False once the relay refuses batches as an unknown request
        self._queue: list[_Waiting] = []
        self._queued = 0
        self._room = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    async def add(self, index: int, sealed: bytes, sha256: str) -> asyncio.Future[None]:
        """Queue object `index` (`sealed`, whose SHA-256 is `sha256`) once there is room; the
        future is done once the relay holds it complete, or fails with the batch's error."""
        while self._queue and self._queued + len(sealed) > QUEUE_BYTES:
            self._room.clear()
            await self._room.wait()
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(index, sealed, sha256, done))
        self._queued += len(sealed)
        self._kick()
        return done

    def cancel(self) -> None:
        for task in self._sending:
            task.cancel()
        for waiting in self._queue:
            waiting.done.cancel()
        self._queue.clear()

    def _kick(self) -> None:
        while self._queue and len(self._sending) < SLOTS:
            batch = self._take()
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        size = 0
        while self._queue and len(batch) < wire.BATCH_OBJECTS and size < BATCH_BYTES:
            waiting = self._queue.pop(0)
            batch.append(waiting)
            size += len(waiting.sealed)
        self._queued -= size
        self._room.set()
        return sorted(batch, key=lambda w: w.index)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._kick()

    async def _send(self, batch: list[_Waiting]) -> None:
        call = functools.partial(
            self.client.upload_batch,
            self.transfer_id,
            [(w.index, w.sealed, w.sha256) for w in batch],
        )
        try:
            await retry.retrying(call, self.on_wait)
        except Exception as e:
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(e)
            return
        except BaseException:
            for waiting in batch:
                waiting.done.cancel()
            raise
        for waiting in batch:
            if not waiting.done.done():
                waiting.done.set_result(None)
