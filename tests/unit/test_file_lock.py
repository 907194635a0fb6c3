"""The agents' lock files (`site_agent.file_lock`): one holder at a time across open files (so
across processes), a waiting task that leaves the loop free and can be cancelled, and a lock
file made private and left in place."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import pytest

from site_agent import file_lock


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_second_holder_waits_until_the_first_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sub" / ".x.lock"
    order: list[str] = []
    second_started = threading.Event()

    def second() -> None:
        second_started.set()
        with file_lock.held(path):
            order.append("second")

    with file_lock.held(path):
        thread = threading.Thread(target=second)
        thread.start()
        second_started.wait()
        thread.join(0.3)
        assert thread.is_alive()  # still waiting for the lock
        order.append("first")
    thread.join()

    assert order == ["first", "second"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.exists()  # left in place for the next holder


@pytest.mark.asyncio
async def test_a_waiting_task_is_told_once_and_takes_the_lock_when_it_is_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".x.lock"
    told: list[str] = []
    taken = asyncio.Event()

    async def waiter() -> None:
        async with file_lock.waited_for(path, lambda: told.append("waiting")):
            taken.set()

    with file_lock.held(path):
        task = asyncio.create_task(waiter())
        # Several polls go by: the loop stays free and the waiter is told only once.
        await asyncio.sleep(file_lock.POLL_SECONDS * 3)
        assert not taken.is_set()
        assert told == ["waiting"]
    await asyncio.wait_for(task, 5)

    assert taken.is_set()
    assert told == ["waiting"]


@pytest.mark.asyncio
async def test_a_free_lock_is_taken_without_a_word(tmp_path: Path) -> None:
    told: list[str] = []
    async with file_lock.waited_for(tmp_path / ".x.lock", lambda: told.append("waiting")):
        pass
    assert told == []


@pytest.mark.asyncio
async def test_a_cancelled_wait_leaves_no_descriptor_and_no_lock(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    before = _open_descriptors()
    with file_lock.held(path):
        task = asyncio.create_task(file_lock.waited_for(path).__aenter__())
        await asyncio.sleep(file_lock.POLL_SECONDS)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _open_descriptors() == before
    async with file_lock.waited_for(path):  # nobody holds it now
        pass


def test_a_folder_that_cannot_be_made_is_told_apart_with_what_the_os_said(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(file_lock.LockFileUnusable) as raised, file_lock.held(blocker / ".x"):
        pass
    assert isinstance(raised.value.cause, FileExistsError)


@pytest.mark.asyncio
async def test_what_fails_while_waiting_is_not_taken_for_an_unusable_lock_file(
    tmp_path: Path,
) -> None:
    """An error from the caller's `on_wait` (say, a closed pipe) is its own, not the folder's."""
    path = tmp_path / ".x.lock"

    def told() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with file_lock.held(path), pytest.raises(BrokenPipeError):
        async with file_lock.waited_for(path, told):
            pass
