"""Object downloads by the receiving site: only after redemption, only before expiry."""

from __future__ import annotations

import json

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
from transfer_codes import wire


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


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    """A batch download's body as (index, sealed bytes), each after its frame."""
    out = []
    while body:
        index, size = wire.read_object_frame(body[: wire.OBJECT_FRAME.size])
        body = body[wire.OBJECT_FRAME.size :]
        out.append((index, body[:size]))
        body = body[size:]
    return out


@pytest.mark.asyncio
async def test_a_batch_answers_the_objects_asked_in_that_order_each_audited(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = [await upload(ctx, sent, i, f"slice {i}".encode() * (i + 1)) for i in range(4)]
    batch = f"/api/v1/transfers/{sent.transfer_id}/objects/fetch"
    assert (await ctx.call("POST", batch, cred=ctx.tc, json={"indices": [0]})).status == 404
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200

    r = await ctx.call("POST", batch, cred=ctx.tc, json={"indices": [3, 0, 2]})
    assert r.status == 200, r
    assert _frames(r.body) == [(3, sealed[3]), (0, sealed[0]), (2, sealed[2])]
    downloads = [
        json.loads(a["detail"])["index"]
        for a in await ctx.audit_records()
        if a["action"] == "object-download" and a["transfer_id"] == sent.transfer_id
    ]
    assert downloads == [3, 0, 2]
    # the sending site cannot read its own objects back
    r = await ctx.call("POST", batch, cred=ctx.er, json={"indices": [0]})
    assert_clear_refusal(r, 403)


@pytest.mark.asyncio
async def test_a_batch_with_an_incomplete_object_answers_none_and_audits_none(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"whole")
    part = f"/api/v1/transfers/{sent.transfer_id}/objects/1"
    r = await ctx.call("PATCH", part, cred=ctx.er, data=b"half", headers={"Upload-Offset": "0"})
    assert r.status == 200
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    batch = f"/api/v1/transfers/{sent.transfer_id}/objects/fetch"
    for indices in ([0, 1], [0, 7]):
        r = await ctx.call("POST", batch, cred=ctx.tc, json={"indices": indices})
        assert (r.status, r.code) == (409, "object-incomplete"), r
    assert not [a for a in await ctx.audit_records() if a["action"] == "object-download"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"indices": []},
        {"indices": [0, 0]},
        {"indices": [True]},
        {"indices": [-1]},
        {"indices": ["0"]},
        {"indices": 0},
        {"indices": list(range(wire.BATCH_OBJECTS + 1))},
    ],
)
async def test_a_batch_not_listing_distinct_indices_is_refused(
    ctx: Ctx, body: dict[str, object]
) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    batch = f"/api/v1/transfers/{sent.transfer_id}/objects/fetch"
    assert_clear_refusal(await ctx.call("POST", batch, cred=ctx.tc, json=body), 400)
