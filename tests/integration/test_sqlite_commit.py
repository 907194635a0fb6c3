"""The embedded store's transactions (`relay.storage.sqlite`, statements on the event loop, a
COMMIT with changes, and a BEGIN that must wait for another connection's lock, in a worker
thread): each is durable when `transaction()` returns (group commit: an fsync of the WAL covers
it), a failing one takes back only its own changes, one whose COMMIT fails (or that SQLite
rolled back by itself) raises, with nothing stored, and a failed fsync fails them all."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from relay import errors
from relay.storage.models import Site
from relay.storage.sqlite import SqliteMetadata

AT_ONCE = 20


class Refused(Exception):
    pass


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadata]:
    opened = await SqliteMetadata.open(tmp_path / "relay.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


def _site(i: int) -> Site:
    return Site(f"site-{i}", "sending", f"Site {i}")


def _committed_sites(path: Path) -> set[str]:
    """The sites another connection sees: only what is committed."""
    other = sqlite3.connect(path)
    try:
        return {name for (name,) in other.execute("SELECT name FROM sites")}
    finally:
        other.close()


async def _add(store: SqliteMetadata, i: int) -> None:
    async with store.transaction() as tx:
        await tx.add_site(_site(i), bytes([i]) * 32, 0.0)


@pytest.mark.asyncio
async def test_each_transaction_is_committed_when_it_returns(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    path = tmp_path / "relay.sqlite3"
    missing: list[int] = []

    async def add_and_look(i: int) -> None:
        await _add(store, i)
        # Returned, so acknowledged: another connection must see it already.
        if _site(i).name not in _committed_sites(path):
            missing.append(i)

    await asyncio.gather(*(add_and_look(i) for i in range(AT_ONCE)))
    assert missing == []
    assert _committed_sites(path) == {_site(i).name for i in range(AT_ONCE)}


@pytest.mark.asyncio
async def test_a_reader_of_an_uncommitted_change_returns_once_it_is_committed(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """A transaction that reads what another changed sees it only once it is durable."""
    path = tmp_path / "relay.sqlite3"
    seen: list[tuple[bool, bool]] = []  # (read it, committed when the reader returned)

    async def read(i: int) -> None:
        async with store.transaction() as tx:
            found = await tx.site(_site(i).name) is not None
        seen.append((found, _site(i).name in _committed_sites(path)))

    await asyncio.gather(*(task for i in range(AT_ONCE) for task in (_add(store, i), read(i))))
    assert seen == [(True, True)] * AT_ONCE


@pytest.mark.asyncio
async def test_a_failing_transaction_takes_back_only_its_own_changes(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    async def add_or_refuse(i: int) -> bool:
        try:
            async with store.transaction() as tx:
                await tx.add_site(_site(i), bytes([i]) * 32, 0.0)
                if i % 3 == 0:
                    raise Refused
        except Refused:
            return False
        return True

    kept = await asyncio.gather(*(add_or_refuse(i) for i in range(AT_ONCE)))
    assert kept == [i % 3 != 0 for i in range(AT_ONCE)]
    assert _committed_sites(tmp_path / "relay.sqlite3") == {
        _site(i).name for i in range(AT_ONCE) if i % 3 != 0
    }
    async with store.transaction() as tx:  # and the store goes on
        assert {s.name for s in await tx.sites()} == _committed_sites(tmp_path / "relay.sqlite3")


@pytest.mark.asyncio
async def test_a_transaction_whose_commit_fails_raises_and_stores_nothing(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """A foreign key left broken until the commit (deferred) makes the COMMIT fail: that
    transaction raises and stores nothing; the ones around it are kept."""

    async def breaks_the_commit() -> None:
        async with store.transaction() as tx:
            await tx.add_site(_site(9), bytes([9]) * 32, 0.0)
            await tx._db.execute("PRAGMA defer_foreign_keys = ON")
            await tx.set_durable_offset("0" * 24, 0, 10)  # a transfer that does not exist

    outcomes = await asyncio.gather(
        _add(store, 1), breaks_the_commit(), _add(store, 2), return_exceptions=True
    )
    assert outcomes[0] is None, outcomes
    assert outcomes[2] is None, outcomes
    assert isinstance(outcomes[1], sqlite3.IntegrityError), outcomes
    assert _committed_sites(tmp_path / "relay.sqlite3") == {_site(1).name, _site(2).name}
    await _add(store, 3)  # and the store goes on
    assert _site(3).name in _committed_sites(tmp_path / "relay.sqlite3")


@pytest.mark.asyncio
async def test_a_transaction_sqlite_rolled_back_by_itself_raises_and_stores_nothing(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """SQLite may roll a transaction back by itself (a full disk, an I/O error): its COMMIT
    then fails, and it may not count as committed."""

    async def rolled_back() -> None:
        async with store.transaction() as tx:
            await tx.add_site(_site(9), bytes([9]) * 32, 0.0)
            await tx._db.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL

    outcomes = await asyncio.gather(_add(store, 1), rolled_back(), return_exceptions=True)
    assert outcomes[0] is None, outcomes
    assert isinstance(outcomes[1], sqlite3.OperationalError), outcomes
    assert _committed_sites(tmp_path / "relay.sqlite3") == {_site(1).name}
    await _add(store, 3)
    assert _committed_sites(tmp_path / "relay.sqlite3") == {_site(1).name, _site(3).name}


@pytest.mark.asyncio
async def test_a_transaction_waits_for_another_connection_holding_the_write_lock(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """BEGIN is first tried on the loop without waiting; when another connection (another
    process, such as an operator's command) holds the write lock, the transaction waits for it
    in a worker thread, meanwhile leaving the loop free, and then commits its own change."""
    path = tmp_path / "relay.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(_add(store, 1))
        for _ in range(50):  # the loop goes on while the transaction waits for the lock
            await asyncio.sleep(0)
        assert not waiting.done()
        other.execute(
            "INSERT INTO sites (name, role, display_name, credential_digest, "
            "created_at) VALUES ('other', 'sending', 'Other', x'00', 0)"
        )
        other.execute("COMMIT")
        await waiting
    finally:
        other.close()
    assert _committed_sites(path) == {"other", _site(1).name}


@pytest.mark.asyncio
async def test_a_transaction_that_wrote_nothing_commits_and_frees_the_lock(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """A read-only transaction ends its transaction (committed on the loop: nothing to write),
    so the next one, or another connection, can take the write lock."""
    async with store.transaction() as tx:
        assert await tx.site("nobody") is None
    other = sqlite3.connect(tmp_path / "relay.sqlite3", isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    await _add(store, 2)
    assert _committed_sites(tmp_path / "relay.sqlite3") == {_site(2).name}


@pytest.mark.asyncio
async def test_a_transaction_returns_only_once_an_fsync_covered_its_commit(
    store: SqliteMetadata,
) -> None:
    """Group commit: the lock is released before the WAL is fsynced, and one fsync covers
    every commit written before it, but no transaction returns before its own commit is on
    disk. The k-th to return committed as one of the first k at the earliest, so at least k
    commits are durable then."""
    returned: list[tuple[int, int]] = []  # (how many had returned, commits durable then)

    async def add(i: int) -> None:
        await _add(store, i)
        returned.append((len(returned) + 1, store.durable_commits))

    await asyncio.gather(*(add(i) for i in range(AT_ONCE)))
    assert all(durable >= k for k, durable in returned), returned
    assert store.durable_commits == AT_ONCE
    assert 1 <= store.wal_syncs <= AT_ONCE


@pytest.mark.asyncio
async def test_after_a_failed_fsync_nothing_counts_as_durable(
    store: SqliteMetadata, tmp_path: Path
) -> None:
    """An fsync of the WAL that fails fails the transactions waiting for it and every one
    after it (a later fsync may succeed although the lost pages never reached the disk): the
    relay must be restarted, and SQLite recovers from what is on disk."""
    read, write = os.pipe()
    try:
        os.dup2(read, store._wal)  # the WAL's descriptor now names a pipe: fsync fails
        with pytest.raises(errors.StorageUnavailable):
            await _add(store, 1)
        with pytest.raises(errors.StorageUnavailable):
            async with store.transaction() as tx:
                await tx.sites()
    finally:
        os.close(read)
        os.close(write)
    assert store.durable_commits == 0
