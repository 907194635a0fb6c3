"""Expiry: everything refused from `expires_at` on, and the sweeper purging."""

from __future__ import annotations

import hashlib
import json

import pytest

from relay import audit
from relay.appkeys import CONFIG, OBJECTS
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    assert_clear_refusal,
    audit_since,
    code_proof,
    create_transfer,
    holdings,
    locks_body,
    put_record,
    redeem,
    redeem_capability,
    status,
    sweep,
    upload,
)


@pytest.mark.asyncio
async def test_expiry_refuses_everything_and_the_sweeper_purges(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    bystander = await create_transfer(ctx, expires_in=100 * 3600)
    sealed = await upload(ctx, sent, 0, b"slice one" * 500)
    await upload(ctx, bystander, 0, b"other study")
    await ctx.call(
        "PATCH",
        f"/api/v1/transfers/{sent.transfer_id}/objects/1",
        cred=ctx.er,
        data=b"partial",
        headers={"Upload-Offset": "0"},
    )
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    proof = await code_proof(ctx, sent.code)
    stored = ctx.stored_objects()
    assert stored.holds(sent.transfer_id)

    ctx.clock.now = sent.expires_at  # expiry is at expires_at exactly
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    assert (await redeem_capability(ctx, sent.capability)).problem == REFUSED
    assert (await status(ctx, sent)).body["state"] == "expired"
    base = f"/api/v1/transfers/{sent.transfer_id}"
    refusals = [
        await ctx.call(
            "PATCH", base + "/objects/1", cred=ctx.er, data=b"more", headers={"Upload-Offset": "7"}
        ),
        await ctx.call(
            "PATCH", base + "/objects/2", cred=ctx.er, data=b"new", headers={"Upload-Offset": "0"}
        ),
        await ctx.call(
            "POST",
            base + "/objects/1/complete",
            cred=ctx.er,
            json={"size": 7, "sha256": hashlib.sha256(b"partial").hexdigest()},
        ),
        await put_record(ctx, sent, 1, b"entry", final=False),
        await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token}),
        await ctx.call("POST", base + "/reissue", cred=ctx.er, json=await locks_body(sent)),
        await ctx.call("POST", base + "/revoke", cred=ctx.er),
    ]
    for r in refusals:
        assert_clear_refusal(r)
        assert "expired" in r.problem[2], r
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True},
        {"index": 1, "offset": 7, "complete": False},
    ]

    assert await sweep(ctx) == 1
    assert not stored.holds(sent.transfer_id)
    assert stored.holds(bystander.transfer_id)
    assert ctx.rows("SELECT count(*) FROM key_locks WHERE transfer_id = ?", sent.transfer_id) == [
        (0,)
    ]
    assert ctx.rows(
        "SELECT count(*) FROM manifest_records WHERE transfer_id = ?", sent.transfer_id
    ) == [(0,)]
    assert ctx.rows(
        "SELECT authorization_digest, break_glass_sealed FROM transfers WHERE id = ?",
        sent.transfer_id,
    ) == [(None, None)]
    assert ctx.rows(
        "SELECT count(*) FROM key_locks WHERE transfer_id = ?", bystander.transfer_id
    ) == [(2,)]
    deleted = [r for r in await ctx.audit_records() if r["event_id"] == audit.STUDY_DELETED]
    assert [(r["transfer_id"], json.loads(r["detail"])) for r in deleted] == [
        (sent.transfer_id, {"reason": "expired"})
    ]
    assert (await status(ctx, sent)).body["state"] == "expired"
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    # after the purge too, nothing fails half-way: still clear refusals, never a 500
    r = await ctx.call(
        "POST",
        base + "/objects/0/complete",
        cred=ctx.er,
        json={"size": len(sealed), "sha256": hashlib.sha256(sealed).hexdigest()},
    )
    assert r.status == 200 or 400 <= r.status < 500, r
    r = await ctx.call(
        "POST",
        base + "/objects/1/complete",
        cred=ctx.er,
        json={"size": 7, "sha256": hashlib.sha256(b"partial").hexdigest()},
    )
    assert_clear_refusal(r)
    assert await sweep(ctx) == 0


@pytest.mark.asyncio
async def test_a_delivered_transfer_is_purged_once_its_grace_has_passed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"delivered slice" * 100)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    receipt = {"instances": 1, "bytes": 1500, "destination": "pacs", "complete": True}
    r = await ctx.call(
        "POST", f"/api/v1/transfers/{sent.transfer_id}/receipt", cred=ctx.tc, json=receipt
    )
    assert (r.status, r.body["state"]) == (200, "delivered")
    stored = ctx.stored_objects()
    grace = ctx.relay.app[CONFIG].delivered_grace
    assert grace == 3600

    ctx.clock.advance(grace - 1)  # within the grace: the trauma center may fetch it again
    assert await sweep(ctx) == 0
    assert stored.holds(sent.transfer_id)
    ctx.clock.advance(1)
    assert await sweep(ctx) == 1
    assert not stored.holds(sent.transfer_id)
    locks = "SELECT count(*) FROM key_locks WHERE transfer_id = ?"
    assert ctx.rows(locks, sent.transfer_id) == [(0,)]
    shown = (await status(ctx, sent)).body
    assert (shown["state"], shown["receipt"]["instances"]) == ("delivered", 1)  # still told
    (purged,) = [r for r in await ctx.audit_records() if r["action"] == "transfer-purged"]
    assert json.loads(purged["detail"])["reason"] == "delivered"


@pytest.mark.asyncio
async def test_a_receipt_while_the_sweeper_deletes_the_files_is_not_overwritten(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt is taken after `expires_at`: one that comes while the sweeper deletes the
    files of the redeemed transfer it found due leaves the transfer delivered, not expired."""
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice" * 100)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    ctx.clock.now = sent.expires_at  # redeemed, and its time is up: due for the sweeper
    objects = ctx.relay.app[OBJECTS]
    delete_transfer = objects.delete_transfer
    receipt = {"instances": 1, "bytes": 500, "destination": "pacs", "complete": True}

    async def receipt_meanwhile(transfer_id: str) -> None:
        # Between the sweeper's listing and its writing: the receipt commits first.
        path = f"/api/v1/transfers/{transfer_id}/receipt"
        r = await ctx.call("POST", path, cred=ctx.tc, json=receipt)
        assert (r.status, r.body["state"]) == (200, "delivered"), r
        await delete_transfer(transfer_id)

    monkeypatch.setattr(objects, "delete_transfer", receipt_meanwhile)
    count = len(await ctx.audit_records())
    assert await sweep(ctx) == 1

    assert not ctx.stored_objects().holds(sent.transfer_id)
    shown = (await status(ctx, sent)).body
    assert (shown["state"], shown["receipt"]["instances"]) == ("delivered", 1)
    changes = [
        (a[1], a[4])
        for a in await audit_since(ctx, count)
        if a[1] not in ("site-authentication", "status-read")
    ]
    assert changes == [
        ("delivery-receipt", {"instances": 1, "destination": "pacs"}),
        ("transfer-purged", {"reason": "delivered"}),  # and no "transfer-expired"
    ]


@pytest.mark.asyncio
async def test_a_transfer_discarded_at_the_trauma_center_is_purged_when_it_expires(
    ctx: Ctx,
) -> None:
    """Not at the delivered grace: it is still redeemed, so a push still following the study
    may upload to it, and only expiry purges what came after (a purged row is never swept
    again)."""
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"discarded slice" * 100)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    receipt = {"instances": 0, "bytes": 0, "destination": "discarded", "complete": False}
    r = await ctx.call(
        "POST", f"/api/v1/transfers/{sent.transfer_id}/receipt", cred=ctx.tc, json=receipt
    )
    assert (r.status, r.body["state"]) == (200, "redeemed")
    stored = ctx.stored_objects()
    ctx.clock.advance(ctx.relay.app[CONFIG].delivered_grace + 1)
    assert await sweep(ctx) == 0
    assert stored.holds(sent.transfer_id)
    ctx.clock.now = sent.expires_at
    assert await sweep(ctx) == 1
    assert not stored.holds(sent.transfer_id)
    shown = (await status(ctx, sent)).body
    assert (shown["state"], shown["receipt"]["destination"]) == ("expired", "discarded")
