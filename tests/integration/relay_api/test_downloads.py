"""Object downloads by the receiving site: only after redemption, only before expiry."""

from __future__ import annotations

import pytest

from relay_api.plumbing import (
    Ctx,
    assert_clear_refusal,
    code_proof,
    create_transfer,
    redeem,
    status,
    sweep,
    upload,
)


@pytest.mark.asyncio
async def test_the_receiver_sees_nothing_before_redemption(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"bytes")
    for path in ("", "/objects", "/objects/0", "/manifest"):
        r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}{path}", cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found"), path


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "range_header", ["bytes=", "bytes=5-10", "items=0-", "bytes=-5", "bytes=\u00b2-"]
)
async def test_bad_range_headers_are_refused(ctx: Ctx, range_header: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "GET",
        f"/api/v1/transfers/{sent.transfer_id}/objects/0",
        cred=ctx.tc,
        headers={"Range": range_header},
    )
    assert_clear_refusal(r, 400, 416)


@pytest.mark.asyncio
async def test_a_delivered_transfer_is_not_downloadable_after_expiry(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = await upload(ctx, sent, 0, b"slice" * 100)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/receipt",
        cred=ctx.tc,
        json={"instances": 1, "bytes": len(sealed), "destination": "pacs", "complete": True},
    )
    assert (r.status, r.body["state"]) == (200, "delivered")
    path = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    assert (await ctx.call("GET", path, cred=ctx.tc)).body == sealed

    ctx.clock.now = sent.expires_at
    for _ in range(2):  # before and after the sweeper removed the files
        r = await ctx.call("GET", path, cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found")
        r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found")
        await sweep(ctx)
    assert not ctx.stored_objects().holds(sent.transfer_id)
    st = await status(ctx, sent)
    assert (st.body["state"], st.body["receipt"]["instances"]) == ("delivered", 1)
