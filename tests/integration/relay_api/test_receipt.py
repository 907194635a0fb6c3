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
