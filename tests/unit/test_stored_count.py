"""The C-STORE threads' counts reach the event loop once per wake-up, the latest told."""

from __future__ import annotations

import asyncio
import threading

import pytest

from receiving_site.stored_count import StoredCount


def put_from_a_thread(count: StoredCount, *counts: tuple[int, int]) -> None:
    """Puts the counts from another thread while the loop is held (joined before returning)."""
    thread = threading.Thread(target=lambda: [count.put(*c) for c in counts])
    thread.start()
    thread.join()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_counts_put_while_the_loop_is_held_are_told_once_the_latest() -> None:
    told: list[tuple[int, int]] = []
    count = StoredCount(asyncio.get_running_loop(), lambda d, t: told.append((d, t)))
    put_from_a_thread(count, (1, 3), (2, 3), (3, 3))
    assert told == []  # not on the thread that put them
    await settle()
    assert told == [(3, 3)]
    assert count.reached == 3


@pytest.mark.asyncio
async def test_a_count_put_after_the_loop_told_the_last_wakes_it_again() -> None:
    told: list[tuple[int, int]] = []
    count = StoredCount(asyncio.get_running_loop(), lambda d, t: told.append((d, t)))
    put_from_a_thread(count, (0, 3))
    await settle()
    put_from_a_thread(count, (1, 3), (2, 4))
    await settle()
    put_from_a_thread(count, (4, 4))
    await settle()
    assert told == [(0, 3), (2, 4), (4, 4)]


@pytest.mark.asyncio
async def test_a_lower_count_put_last_does_not_take_the_told_count_back() -> None:
    # Several associations' threads may put their counts out of order.
    told: list[tuple[int, int]] = []
    count = StoredCount(asyncio.get_running_loop(), lambda d, t: told.append((d, t)))
    put_from_a_thread(count, (5, 9), (4, 9))
    assert count.reached == 5
    await settle()
    assert told == [(5, 9)]
    put_from_a_thread(count, (3, 9))
    await settle()
    assert told == [(5, 9), (5, 9)]
    assert count.reached == 5
