"""The audit trail: a hash chain, append-only, tampering detected."""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3

import pytest

from relay import audit
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import (
    Ctx,
    b64,
    code_proof,
    create_transfer,
    locks_body,
    put_record,
    redeem,
    unused_locator,
    upload,
    wrong_proof,
)
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.notes import seal_note


@pytest.mark.asyncio
async def test_audit_chain_after_a_full_flow(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    sealed = seal_note(sent.data_key, sent.transfer_id, "break-glass", {"reason": "unconscious"})
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/break-glass",
        cred=ctx.er,
        json={"sealed_reason": b64(sealed)},
    )
    assert r.status == 200
    await upload(ctx, sent, 0, b"one")
    await upload(ctx, sent, 1, b"two")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    assert (await put_record(ctx, sent, 1, b"close", final=True)).status == 201
    for _ in range(MAX_FAILED_ATTEMPTS):
        await redeem(ctx, sent.locator, wrong_proof())
    await redeem(ctx, unused_locator(sent), wrong_proof())
    sent.code = RedemptionCode.generate(sent.locator)
    sent.capability = Capability.generate(sent.transfer_id)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/reissue",
        cred=ctx.er,
        json=await locks_body(sent),
    )
    assert r.status == 200
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    for index in (0, 1):
        r = await ctx.call(
            "GET", f"/api/v1/transfers/{sent.transfer_id}/objects/{index}", cred=ctx.tc
        )
        assert r.status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/receipt",
        cred=ctx.tc,
        json={"instances": 2, "bytes": 6, "destination": "folder", "complete": True},
    )
    assert r.status == 200

    records = await ctx.audit_records()
    assert audit_chain_intact(records)
    mine = [
        (r["event_id"], r["action"], r["outcome"])
        for r in records
        if r["transfer_id"] == sent.transfer_id
    ]
    assert mine.count((audit.BEGIN_TRANSFERRING, "transfer-created", "success")) == 1
    assert mine.count((audit.USER_AUTHENTICATION, "redeem-attempt", "failure")) == 10
    assert mine.count((audit.USER_AUTHENTICATION, "redeem-attempt", "success")) == 1
    assert mine.count((audit.SECURITY_ALERT, "break-glass-authorization", "success")) == 1
    assert mine.count((audit.SECURITY_ALERT, "transfer-locked", "failure")) == 1
    assert mine.count((audit.SECURITY_ALERT, "code-reissued", "success")) == 1
    assert mine.count((audit.INSTANCES_ACCESSED, "object-download", "success")) == 2
    assert mine.count((audit.INSTANCES_TRANSFERRED, "upload-closed", "success")) == 1
    assert mine.count((audit.IMPORT, "delivery-receipt", "success")) == 1
    unknown = [r for r in records if r["transfer_id"] is None and r["action"] == "redeem-attempt"]
    assert [r["outcome"] for r in unknown] == ["failure"]
    # the chain is in time order and every link is the previous hash
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    assert all(bytes(b["prev_hash"]) == bytes(a["hash"]) for a, b in itertools.pairwise(records))
    # no secret of the transfer ever reaches the audit trail
    trail = json.dumps(
        [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    )
    for secret in (sent.code.compact(), sent.token, sent.capability.to_text(), b64(sent.data_key)):
        assert secret not in trail


@pytest.mark.sqlite_only  # tampers with the SQLite file (PostgreSQL: test_postgres_store)
@pytest.mark.asyncio
async def test_audit_records_cannot_be_changed_and_tampering_is_detected(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await redeem(ctx, sent.locator, wrong_proof())
    assert audit_chain_intact(await ctx.audit_records())
    with contextlib.closing(ctx.db()) as db:
        for statement in (
            "UPDATE audit SET detail = '{}' WHERE seq = 2",
            "DELETE FROM audit WHERE seq = 2",
            "DELETE FROM audit",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
            db.rollback()
    count = len(await ctx.audit_records())
    assert count >= 5

    # someone with the file drops the triggers and rewrites one record's detail
    with contextlib.closing(ctx.db()) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        (detail,) = db.execute("SELECT detail FROM audit WHERE seq = 3").fetchone()
        db.execute(
            "UPDATE audit SET detail = ? WHERE seq = 3",
            (detail.replace("}", ',"x":1}') if detail != "{}" else '{"x":1}',),
        )
        db.commit()
    records = await ctx.audit_records()
    assert len(records) == count
    assert not audit_chain_intact(records)


@pytest.mark.sqlite_only  # tampers with the SQLite file (PostgreSQL: test_postgres_store)
@pytest.mark.asyncio
async def test_deleting_an_audit_record_is_detected(ctx: Ctx) -> None:
    await create_transfer(ctx)
    with contextlib.closing(ctx.db()) as db:
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute("DELETE FROM audit WHERE seq = 2")
        db.commit()
    assert not audit_chain_intact(await ctx.audit_records())
