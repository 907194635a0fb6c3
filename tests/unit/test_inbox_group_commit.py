"""Group commit (`sending_site.inbox.group_commit`): what arrives while a commit runs shares the
next one, each waiter gets its own outcome only after its commit returned, and a failed commit
fails exactly its own batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sending_site.inbox.group_commit import GroupCommit


class RecordingCommit:
    """A commit that logs `(who.what, items)` and returns each item upper-cased, held open
    until the test releases it; `fail_on` makes the commit holding that item raise."""

    def __init__(self, fail_on: str = "") -> None:
        self.log: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.log.append(("commit.started", list(items)))
        await self.release.wait()
        if self.fail_on in items:
            self.log.append(("commit.failed", list(items)))
            raise OSError("the disk is full")
        self.log.append(("commit.done", list(items)))
        return [item.upper() for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_what_arrives_during_a_commit_shares_the_next_one() -> None:
    commit = RecordingCommit()
    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit("a"))
    await _settle()
    later = [asyncio.create_task(group.submit(item)) for item in ("b", "c", "d")]
    await _settle()
    assert commit.log == [("commit.started", ["a"])]
    assert not any(task.done() for task in (first, *later))  # nobody answered before its commit

    commit.release.set()
    assert await asyncio.gather(first, *later) == ["A", "B", "C", "D"]
    assert commit.log == [
        ("commit.started", ["a"]),
        ("commit.done", ["a"]),
        ("commit.started", ["b", "c", "d"]),
        ("commit.done", ["b", "c", "d"]),
    ]


@pytest.mark.asyncio
async def test_a_batch_is_at_most_max_batch_items() -> None:
    commit = RecordingCommit()
    commit.release.set()
    group = GroupCommit(commit, max_batch=2)
    items = ["a", "b", "c", "d", "e"]
    tasks = [asyncio.create_task(group.submit(item)) for item in items]
    assert await asyncio.gather(*tasks) == [item.upper() for item in items]
    assert [items for what, items in commit.log if what == "commit.started"] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]


@pytest.mark.asyncio
async def test_a_failed_commit_fails_its_own_batch_only() -> None:
    commit = RecordingCommit(fail_on="b")
    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit("a"))
    await _settle()
    failing = [asyncio.create_task(group.submit(item)) for item in ("b", "c")]
    await _settle()
    commit.release.set()
    assert await first == "A"
    for task in failing:
        with pytest.raises(OSError, match="the disk is full"):
            await task
    # The committer is free again: a later image gets its own commit.
    assert await group.submit("e") == "E"
    assert commit.log[-2:] == [("commit.started", ["e"]), ("commit.done", ["e"])]
