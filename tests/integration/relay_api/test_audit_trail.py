"""The audit trail as an auditor reads it: straight from the running relay's database, and from
a copy that someone with the file has edited, added to or cut records from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import errors
from relay.audit_trail.jsonl import export_jsonl, record_from_line
from relay.audit_trail.reading import Record, each_audit_record, read_audit_records
from relay.sites import open_store
from relay.storage.audit_chain import GENESIS, Problem, chain_hash, verify_audit_chain
from relay_api.plumbing import Ctx, create_transfer, redeem, status, wrong_proof

SEQ = 3  # the record each tampering is done to


async def _trail(ctx: Ctx, copy: Path) -> list[Record]:
    """Audit records made through the real relay API, and `copy`: the relay's data folder with
    a consistent copy of its database (SQLite's backup, as the relay keeps running)."""
    sent = await create_transfer(ctx)
    assert (await status(ctx, sent)).status == 200
    await redeem(ctx, sent.locator, wrong_proof())
    await asyncio.to_thread(copy.mkdir)
    with (
        contextlib.closing(ctx.db()) as source,
        contextlib.closing(sqlite3.connect(copy / "relay.sqlite3")) as target,
    ):
        source.backup(target)
    records = read_audit_records(copy)
    assert len(records) >= 6
    return records


@contextlib.contextmanager
def _tampering(copy: Path) -> Iterator[sqlite3.Connection]:
    """The copy's database, its append-only triggers dropped, as whoever has the file can."""
    with contextlib.closing(sqlite3.connect(copy / "relay.sqlite3")) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        yield db
        db.commit()


def _found(copy: Path) -> list[tuple[int, Problem]]:
    return [(f.seq, f.problem) for f in verify_audit_chain(read_audit_records(copy))]


@pytest.mark.asyncio
async def test_the_trail_is_read_a_batch_at_a_time_from_the_database(ctx: Ctx) -> None:
    """What `audit follow` asks for, a batch at a time: the records after one, at most a number
    of them, selected by the database (on PostgreSQL, every batch used to read the whole
    trail and drop what came before)."""
    await create_transfer(ctx)
    await create_transfer(ctx)
    every = await ctx.audit_records()
    assert len(every) >= 4
    after = int(every[0]["seq"])
    batch = await asyncio.to_thread(read_audit_records, ctx.relay.data_dir, after=after, limit=2)
    assert batch == every[1:3]
    store = await open_store(ctx.relay.data_dir, create=False, upgrade=False)
    try:
        assert await store.audit_records(int(every[1]["seq"]), 2) == every[2:4]
        assert await store.audit_records(int(every[-1]["seq"])) == []
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_the_whole_trail_read_a_page_at_a_time_is_the_trail(ctx: Ctx) -> None:
    """`audit verify` and `audit export` read the trail a page at a time, never whole."""
    for _ in range(3):
        await create_transfer(ctx)
    every = await ctx.audit_records()
    assert len(every) > 5
    paged = await asyncio.to_thread(lambda: list(each_audit_record(ctx.relay.data_dir, page=2)))
    assert paged == every


def _renumber_from(db: sqlite3.Connection, seq: int, by: int) -> None:
    # seq is the primary key: move the tail out of the way first, then into place.
    db.execute("UPDATE audit SET seq = seq + 1000000 WHERE seq >= ?", (seq,))
    db.execute("UPDATE audit SET seq = seq - 1000000 + ? WHERE seq >= 1000000", (by,))


@pytest.mark.asyncio
async def test_the_trail_is_read_while_the_relay_runs_and_is_intact(ctx: Ctx) -> None:
    records = await asyncio.to_thread(read_audit_records, ctx.relay.data_dir)
    assert records == await ctx.audit_records()
    sent = await create_transfer(ctx)
    await redeem(ctx, sent.locator, wrong_proof())
    records = await asyncio.to_thread(read_audit_records, ctx.relay.data_dir)
    assert records == await ctx.audit_records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert verify_audit_chain(records) == []
    assert {"transfer-created", "redeem-attempt"} <= {r["action"] for r in records}


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_an_edited_record_is_named(ctx: Ctx, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    records = await _trail(ctx, copy)
    assert verify_audit_chain(records) == []
    with _tampering(copy) as db:
        db.execute(
            "UPDATE audit SET outcome = CASE outcome WHEN 'success' THEN 'failure' "
            "ELSE 'success' END WHERE seq = ?",
            (SEQ,),
        )
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = ?", (SEQ + 2,))
    findings = verify_audit_chain(read_audit_records(copy))
    assert [(f.seq, f.problem) for f in findings] == [
        (SEQ, Problem.EDITED),
        (SEQ + 2, Problem.EDITED),
    ]
    assert findings[0].sentence == (
        f"Record {SEQ} was changed after it was written: its hash does not cover its content."
    )


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_a_record_edited_and_hashed_again_breaks_the_next_link(
    ctx: Ctx, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    records = await _trail(ctx, copy)
    edited = records[SEQ - 1]
    content = {k: edited[k] for k in ("at", "event_id", "action", "actor_role", "transfer_id")}
    content |= {"actor": "someone-else", "outcome": edited["outcome"], "remote": edited["remote"]}
    content["detail"] = json.loads(edited["detail"])
    forged = chain_hash(bytes(edited["prev_hash"]), content)
    with _tampering(copy) as db:
        db.execute("UPDATE audit SET actor = 'someone-else', hash = ? WHERE seq = ?", (forged, SEQ))
    assert _found(copy) == [(SEQ + 1, Problem.LINK)]


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_an_inserted_record_is_named(ctx: Ctx, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    records = await _trail(ctx, copy)
    before = records[SEQ - 2]
    # A well-formed record, hashed onto the one before it, slipped in at SEQ.
    content = {
        "at": before["at"] + 0.5,
        "event_id": "110114",
        "action": "site-authentication",
        "actor": "st-mary-er",
        "actor_role": "sending",
        "transfer_id": None,
        "outcome": "success",
        "detail": {},
        "remote": "203.0.113.4",
    }
    digest = chain_hash(bytes(before["hash"]), content)
    with _tampering(copy) as db:
        _renumber_from(db, SEQ, 1)
        db.execute(
            "INSERT INTO audit (seq, at, event_id, action, actor, actor_role, transfer_id, "
            "outcome, detail, remote, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, "
            "?, ?)",
            (
                SEQ,
                content["at"],
                content["event_id"],
                content["action"],
                content["actor"],
                content["actor_role"],
                None,
                "success",
                content["remote"],
                bytes(before["hash"]),
                digest,
            ),
        )
    assert _found(copy) == [(SEQ, Problem.INSERTED)]
    assert len(read_audit_records(copy)) == len(records) + 1


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_an_inserted_record_with_a_made_up_hash_is_named(ctx: Ctx, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    records = await _trail(ctx, copy)
    last = records[-1]
    with _tampering(copy) as db:
        db.execute(
            "INSERT INTO audit (at, event_id, action, actor, actor_role, transfer_id, outcome, "
            "detail, remote, prev_hash, hash) VALUES (?, '110100', 'status-read', 'x', "
            "'sending', NULL, 'success', '{}', 'local', ?, ?)",
            (last["at"], bytes(last["hash"]), GENESIS),
        )
    assert _found(copy) == [(len(records) + 1, Problem.EDITED)]


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_a_deleted_record_is_named(ctx: Ctx, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    await _trail(ctx, copy)
    with _tampering(copy) as db:
        db.execute("DELETE FROM audit WHERE seq IN (?, ?)", (SEQ, SEQ + 1))
    findings = verify_audit_chain(read_audit_records(copy))
    assert [(f.seq, f.problem) for f in findings] == [(SEQ + 2, Problem.GAP)]
    assert (
        findings[0].sentence == f"Before record {SEQ + 2}, records {SEQ} to {SEQ + 1} were removed."
    )


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_a_deleted_first_record_and_a_deleted_record_renumbered_over_are_found(
    ctx: Ctx, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    await _trail(ctx, copy)
    with _tampering(copy) as db:
        db.execute("DELETE FROM audit WHERE seq = 1")
        db.execute("DELETE FROM audit WHERE seq = ?", (SEQ,))
        _renumber_from(db, SEQ + 1, -1)
    found = verify_audit_chain(read_audit_records(copy))
    assert [(f.seq, f.problem) for f in found] == [(2, Problem.GAP), (SEQ, Problem.LINK)]
    assert found[0].sentence == "Before record 2, record 1 was removed."


@pytest.mark.sqlite_only  # tampers with a copy of the SQLite file
@pytest.mark.asyncio
async def test_json_lines_of_the_real_trail_come_back_whole(ctx: Ctx, tmp_path: Path) -> None:
    records = await _trail(ctx, tmp_path / "copy")
    lines = export_jsonl(records).splitlines()
    assert [record_from_line(line) for line in lines] == records
    assert verify_audit_chain([record_from_line(line) for line in lines]) == []


def test_a_folder_without_a_relay_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(errors.NoRelayData):
        read_audit_records(tmp_path)
    (tmp_path / "relay.sqlite3").write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(errors.AuditTrailUnreadable, match="could not be read"):
        read_audit_records(tmp_path)
