"""The delivery receipt (`POST /api/v1/transfers/{id}/receipt`)."""

from __future__ import annotations

import pytest

from relay_api.plumbing import (
    PROBLEM,
    Ctx,
    code_proof,
    create_transfer,
    nothing_changes,
    redeem,
    state_of,
    status,
)


@pytest.mark.asyncio
@pytest.mark.parametrize("complete", ["no", "false", 1, 0, None, [], {}])
async def test_receipt_complete_must_be_a_json_boolean(ctx: Ctx, complete: object) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    body = {"instances": 1, "bytes": 1, "destination": "pacs"}
    with nothing_changes(ctx):
        r = await ctx.call("POST", path, cred=ctx.tc, json={**body, "complete": complete})
    assert r.problem == (400, PROBLEM + "bad-request", "'complete' must be true or false.")
    assert (await state_of(ctx, sent))[0] == "redeemed"
    r = await ctx.call("POST", path, cred=ctx.tc, json={**body, "complete": False})
    assert (r.status, r.body["state"]) == (200, "delivered")
    assert (await status(ctx, sent)).body["receipt"]["complete"] is False


DELIVERED = {"instances": 212, "bytes": 9, "destination": "pacs", "complete": True}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ({"decompressed": "40"}, "'decompressed' must be an integer from 0 to 212."),
        ({"decompressed": 213}, "'decompressed' must be an integer from 0 to 212."),
        ({"decompressed": -1}, "'decompressed' must be an integer from 0 to 212."),
        ({"decompressed": True}, "'decompressed' must be an integer from 0 to 212."),
        ({"decompressed": 4.5}, "'decompressed' must be an integer from 0 to 212."),
        ({"reconciled": "yes"}, "'reconciled' must be true or false."),
        ({"reconciled": 1}, "'reconciled' must be true or false."),
        ({"reconciled": None}, "'reconciled' must be true or false."),
    ],
)
async def test_receipt_details_are_checked_strictly(
    ctx: Ctx, details: dict[str, object], problem: str
) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    with nothing_changes(ctx):
        r = await ctx.call("POST", path, cred=ctx.tc, json={**DELIVERED, **details})
    assert r.problem == (400, PROBLEM + "bad-request", problem)
    assert (await state_of(ctx, sent))[0] == "redeemed"


@pytest.mark.asyncio
async def test_receipt_carries_decompressed_and_reconciled_to_the_sender(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    kept = {**DELIVERED, "decompressed": 40, "reconciled": True}
    body = {**kept, "patient_name": "DOE^JANE"}  # the name is not something the relay keeps
    r = await ctx.call("POST", path, cred=ctx.tc, json=body)
    assert (r.status, r.body["state"]) == (200, "delivered")
    receipt = (await status(ctx, sent)).body["receipt"]
    assert {k: v for k, v in receipt.items() if k != "received_at"} == kept
    stored = ctx.rows("SELECT receipt FROM transfers")
    assert "DOE" not in repr(stored)


@pytest.mark.asyncio
async def test_the_receipt_body_is_documented_in_openapi(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/api/openapi.json")
    operation = r.body["paths"]["/api/v1/transfers/{transfer_id}/receipt"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["decompressed"]["type"] == "integer"
    assert schema["properties"]["reconciled"]["type"] == "boolean"


@pytest.mark.asyncio
async def test_a_discard_leaves_the_transfer_redeemed_and_is_told_to_the_sender(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    discard = {"instances": 7, "bytes": 0, "destination": "discarded", "complete": False}
    r = await ctx.call("POST", path, cred=ctx.tc, json=discard)
    assert (r.status, r.body["state"]) == (200, "redeemed")
    told = (await status(ctx, sent)).body
    assert told["state"] == "redeemed"
    assert {k: v for k, v in told["receipt"].items() if k != "received_at"} == discard
    actions = ctx.rows("SELECT action, outcome FROM audit WHERE transfer_id = ?", sent.transfer_id)
    assert ("discard-receipt", "success") in actions


@pytest.mark.asyncio
async def test_a_discard_before_redemption_is_refused(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    discard = {"instances": 0, "bytes": 0, "destination": "discarded"}
    with nothing_changes(ctx):
        r = await ctx.call("POST", path, cred=ctx.tc, json=discard)
    assert r.status == 409
    assert (await state_of(ctx, sent))[0] != "redeemed"


@pytest.mark.asyncio
async def test_an_unknown_destination_names_those_accepted(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    with nothing_changes(ctx):
        r = await ctx.call(
            "POST", path, cred=ctx.tc, json={"instances": 0, "bytes": 0, "destination": "bin"}
        )
    assert r.problem == (
        400,
        PROBLEM + "bad-request",
        "'destination' must be one of 'pacs', 'folder', 'review', 'discarded'.",
    )
