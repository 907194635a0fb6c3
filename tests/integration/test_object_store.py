"""The relay's file object store (`relay.storage.files`) on a real folder: its disk work runs in
worker threads, never on the event loop, and moving it there kept what a write promises
(durable before it returns, cut at the offset, bounded by the limit)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay import errors
from relay.storage.files import FileObjectStore
from transfer_codes.tokens import new_transfer_id

# Everything that touches the disk on the path of a store call (Path.stat and Path.exists go
# through os.stat; Path.open through pathlib).
DISK_CALLS: list[tuple[Any, str]] = [
    (os, "open"),
    (os, "write"),
    (os, "pwrite"),
    (os, "lseek"),
    (os, "fsync"),
    (os, "stat"),
    (os, "close"),
    (Path, "open"),
]


def spy_on_disk(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record each disk call as (name, made on the event loop's thread)."""
    loop_thread = threading.get_ident()
    calls: list[tuple[str, bool]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident() == loop_thread))
            return real(*args, **kwargs)

        return call

    for owner, name in DISK_CALLS:
        monkeypatch.setattr(owner, name, spy(name, getattr(owner, name)))
    return calls


async def blocks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(store: FileObjectStore, tid: str, index: int, start: int = 0) -> bytes:
    return b"".join([block async for block in store.read(tid, index, start)])


@pytest.mark.asyncio
async def test_no_disk_work_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileObjectStore(tmp_path / "objects")
    tid = new_transfer_id()
    first = [os.urandom(300_000), os.urandom(900_000), os.urandom(10)]
    calls = spy_on_disk(monkeypatch)

    assert await store.write_at(tid, 0, 0, blocks(*first), 1 << 30) == 1_200_010
    assert await store.size(tid, 0) == 1_200_010
    assert await store.size(tid, 1) == 0  # never written
    assert await read_all(store, tid, 0, 5) == b"".join(first)[5:]
    # resuming at an offset cuts what lies past it, then appends
    assert await store.write_at(tid, 0, 100, blocks(b"resumed"), 1 << 30) == 107
    assert await read_all(store, tid, 0) == first[0][:100] + b"resumed"

    assert calls, "the spies saw nothing"
    assert [name for name, on_loop in calls if on_loop] == []
    assert ("fsync", False) in calls


@pytest.mark.asyncio
async def test_a_write_is_cut_at_the_limit(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "objects")
    tid = new_transfer_id()
    with pytest.raises(errors.ObjectTooLarge):
        await store.write_at(tid, 0, 0, blocks(b"a" * 600, b"b" * 600), 1000)
    assert await store.write_at(tid, 0, 0, blocks(b"a" * 600, b"b" * 400), 1000) == 1000
    assert await read_all(store, tid, 0) == b"a" * 600 + b"b" * 400


@pytest.mark.asyncio
async def test_a_cancelled_write_waits_for_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling the request must not close the descriptor under a thread still writing to it
    (the number could be reused by another file), nor leave a write landing later."""
    store = FileObjectStore(tmp_path / "objects")
    tid = new_transfer_id()
    started = threading.Event()
    finished: list[float] = []
    real_pwrite = os.pwrite

    def slow_pwrite(fd: int, data: Any, offset: int) -> int:
        started.set()
        time.sleep(0.3)
        done = real_pwrite(fd, data, offset)
        finished.append(time.monotonic())
        return done

    monkeypatch.setattr(os, "pwrite", slow_pwrite)
    task = asyncio.create_task(store.write_at(tid, 0, 0, blocks(b"x" * 1000), 1 << 20))
    assert await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished, "the cancelled write returned while its thread was still writing"
