"""Revoke (`POST /api/v1/transfers/{id}/revoke`), and the sweeper purging what it stopped."""

from __future__ import annotations

import json

import pytest

from relay import audit
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    code_proof,
    create_transfer,
    put_record,
    redeem,
    redeem_capability,
    state_of,
    status,
    sweep,
    upload,
)


@pytest.mark.asyncio
async def test_revoke_before_redemption_stops_it(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    proof = await code_proof(ctx, sent.code)
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.body["state"]) == (200, "revoked")
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
    assert (r.status, r.code) == (410, "revoked")
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    assert (await redeem_capability(ctx, sent.capability)).problem == REFUSED
    assert ctx.rows("SELECT count(*) FROM key_locks") == [(0,)]
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.code) == (410, "revoked")
    r = await ctx.call(
        "PATCH",
        f"/api/v1/transfers/{sent.transfer_id}/objects/0",
        cred=ctx.er,
        data=b"x",
        headers={"Upload-Offset": "0"},
    )
    assert (r.status, r.code) == (409, "invalid-state")


@pytest.mark.asyncio
async def test_revoke_after_redemption_is_already_redeemed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = await upload(ctx, sent, 0, b"slice")
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.code) == (409, "already-redeemed")
    assert r.problem[2] == (
        "The trauma center has already taken this transfer, so it can no longer be revoked."
    )
    assert await state_of(ctx, sent) == ("redeemed", 0)
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/objects/0", cred=ctx.tc)
    assert (r.status, r.body) == (200, sealed)


@pytest.mark.asyncio
async def test_revoked_transfers_are_purged(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.body["state"]) == (200, "revoked")
    assert await sweep(ctx) == 1
    assert not ctx.stored_objects().holds(sent.transfer_id)
    assert ctx.rows("SELECT count(*) FROM key_locks") == [(0,)]
    assert ctx.rows("SELECT count(*) FROM manifest_records") == [(0,)]
    deleted = [r for r in await ctx.audit_records() if r["event_id"] == audit.STUDY_DELETED]
    assert [json.loads(r["detail"]) for r in deleted] == [{"reason": "revoked"}]
    assert (await status(ctx, sent)).body["state"] == "revoked"
