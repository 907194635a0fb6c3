"""Two relay instances on one PostgreSQL database and one bucket write one sealed object one at
a time: a client that retries a PATCH through the other instance while the first still writes
waits for it (or is told to resume), and never cuts bytes the first has acknowledged."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.appkeys import METADATA
from relay.storage.postgres import OBJECT_WRITE_SPACE, PostgresMetadata
from relay_api.plumbing import Ctx, create_transfer, holdings
from relay_api.test_postgres_store import ON_POSTGRES, second_instance
from transfer_codes import wire
from transfer_codes.sealed import seal_object


def write_locks(ctx: Ctx) -> list[bool]:
    """Whether each object write lock in the database is held (True) or waited for (False)."""
    assert ctx.pg is not None
    rows = ctx.pg.server.rows(
        ctx.pg.name,
        "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND classid = ?::oid "
        "AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) ORDER BY granted DESC",
        OBJECT_WRITE_SPACE,
    )
    return [bool(r[0]) for r in rows]


async def until(condition: object, what: str) -> None:
    assert callable(condition)
    for _ in range(600):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited 30 s for {what}")


async def held_back(first: bytes, gate: asyncio.Event, rest: bytes) -> AsyncIterator[bytes]:
    """A request body that sends `first`, then waits for `gate` before sending `rest`."""
    yield first
    await gate.wait()
    yield rest


@ON_POSTGRES
@pytest.mark.asyncio
async def test_a_retry_through_the_other_instance_waits_for_the_write_in_flight(
    ctx: Ctx, tmp_path: Path
) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        sent = await create_transfer(ctx)
        sealed = seal_object(sent.data_key, sent.transfer_id, 0, bytes(range(256)) * 4000)
        half = len(sealed) // 2
        base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
        done = {
            "Upload-Offset": "0",
            "Upload-Length": str(len(sealed)),
            "Upload-SHA256": hashlib.sha256(sealed).hexdigest(),
        }
        gate = asyncio.Event()
        first = asyncio.create_task(
            ctx.call(
                "PATCH",
                base,
                cred=ctx.er,
                data=held_back(sealed[:half], gate, sealed[half:]),
                headers=done,
            )
        )
        await until(lambda: write_locks(ctx) == [True], "the first instance's write lock")
        # The client gives up on the first instance and sends the whole object to the other.
        retry = asyncio.create_task(
            other.call("PATCH", base, cred=ctx.er, data=sealed, headers=done)
        )
        await until(lambda: write_locks(ctx) == [True, False], "the retry to wait for it")
        assert not retry.done()
        gate.set()
        answer, refused = await first, await retry
        assert (answer.status, answer.body) == (200, {"offset": len(sealed), "complete": True})
        # the retry started after the first write ended, and found the object complete
        assert refused.status == 409, refused
        assert write_locks(ctx) == []
        for instance in (ctx, other):
            assert (await holdings(instance, sent))["objects"] == [
                {"index": 0, "offset": len(sealed), "complete": True}
            ]
        assert ctx.stored_objects().content(sent.transfer_id, 0) == sealed


@ON_POSTGRES
@pytest.mark.asyncio
async def test_a_write_still_held_elsewhere_is_a_409_with_the_offset_to_resume_from(
    ctx: Ctx, tmp_path: Path
) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        assert other.relay.app is not None
        store = other.relay.app[METADATA]
        assert isinstance(store, PostgresMetadata)
        store.write_lock_wait = 0.2
        sent = await create_transfer(ctx)
        sealed = seal_object(sent.data_key, sent.transfer_id, 0, bytes(range(256)) * 4000)
        half = len(sealed) // 2
        base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=sealed[:half], headers={"Upload-Offset": "0"}
        )
        assert (r.status, r.body["offset"]) == (200, half), r
        gate = asyncio.Event()
        rest = sealed[half:]
        first = asyncio.create_task(
            ctx.call(
                "PATCH",
                base,
                cred=ctx.er,
                data=held_back(rest[:1000], gate, rest[1000:]),
                headers={"Upload-Offset": str(half)},
            )
        )
        await until(lambda: write_locks(ctx) == [True], "the first instance's write lock")
        busy = await other.call(
            "PATCH", base, cred=ctx.er, data=rest, headers={"Upload-Offset": str(half)}
        )
        assert busy.code == "upload-offset-mismatch"
        assert busy.body["offset"] == half
        assert "another instance" in busy.body["detail"]
        gate.set()
        answer = await first
        assert (answer.status, answer.body["offset"]) == (200, len(sealed)), answer
        assert (await holdings(other, sent))["objects"][0]["offset"] == len(sealed)
        assert ctx.stored_objects().content(sent.transfer_id, 0) == sealed


@ON_POSTGRES
@pytest.mark.asyncio
async def test_a_batch_with_an_object_written_elsewhere_is_refused_and_holds_no_lock(
    ctx: Ctx, tmp_path: Path
) -> None:
    """A batch's objects are locked together, on one connection: if one of them is being
    written through the other instance, the batch is refused (its sender sends each alone), and
    the locks it was granted meanwhile are given back."""
    async with second_instance(ctx, tmp_path / "second") as other:
        assert other.relay.app is not None
        store = other.relay.app[METADATA]
        assert isinstance(store, PostgresMetadata)
        store.write_lock_wait = 0.2
        sent = await create_transfer(ctx)
        objects = [
            (i, sealed, hashlib.sha256(sealed).hexdigest())
            for i in range(4)
            for sealed in [seal_object(sent.data_key, sent.transfer_id, i, bytes([i]) * 5000)]
        ]
        gate = asyncio.Event()
        _, sealed, digest = objects[2]
        first = asyncio.create_task(
            ctx.call(
                "PATCH",
                f"/api/v1/transfers/{sent.transfer_id}/objects/2",
                cred=ctx.er,
                data=held_back(sealed[:1000], gate, sealed[1000:]),
                headers={
                    "Upload-Offset": "0",
                    "Upload-Length": str(len(sealed)),
                    "Upload-SHA256": digest,
                },
            )
        )
        await until(lambda: write_locks(ctx) == [True], "the first instance's write lock")
        batch = f"/api/v1/transfers/{sent.transfer_id}/objects"
        busy = await other.call("POST", batch, cred=ctx.er, data=wire.pack_objects(objects))
        assert busy.code == "upload-offset-mismatch", busy
        assert "another instance" in busy.body["detail"]
        assert write_locks(ctx) == [True]  # the first instance's; none of the batch's
        gate.set()
        assert (await first).status == 200
        assert write_locks(ctx) == []
        # sent again, object 2 is taken as complete and the others are stored
        again = await other.call("POST", batch, cred=ctx.er, data=wire.pack_objects(objects))
        assert again.status == 200, again
        for index, sealed, _ in objects:
            assert ctx.stored_objects().content(sent.transfer_id, index) == sealed
