"""Whole sealed objects several to a request (POST …/objects, `wire.pack_objects`): each new one
stored and acknowledged as one uploaded alone; a batch sent again after a lost answer taken
again; a batch the relay refuses acknowledges nothing of it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import aiohttp
import pytest
from relay_harness import FakeClock, running_relay

from relay.api.batches import MAX_LISTING
from relay_api.plumbing import (
    Ctx,
    Reply,
    Sent,
    assert_clear_refusal,
    audit_since,
    code_proof,
    create_transfer,
    holdings,
    redeem,
    upload,
)
from transfer_codes import wire
from transfer_codes.sealed import open_object, seal_object


def _sealed(sent: Sent, index: int, plaintext: bytes) -> tuple[int, bytes, str]:
    sealed = seal_object(sent.data_key, sent.transfer_id, index, plaintext)
    return index, sealed, hashlib.sha256(sealed).hexdigest()


async def _post(ctx: Ctx, sent: Sent, body: bytes) -> Reply:
    return await ctx.call(
        "POST", f"/api/v1/transfers/{sent.transfer_id}/objects", cred=ctx.er, data=body
    )


@pytest.mark.asyncio
async def test_a_batch_stores_each_object_as_uploading_it_alone_does(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    objects = [_sealed(sent, i, f"image {i} ".encode() * (100 + i)) for i in (0, 1, 3)]
    count = len(await ctx.audit_records())
    r = await _post(ctx, sent, wire.pack_objects(objects))
    assert r.status == 200, r
    assert r.body["objects"] == [
        {"index": i, "offset": len(b), "complete": True} for i, b, _ in objects
    ]
    held = await holdings(ctx, sent)
    assert {(o["index"], o["offset"], o["complete"]) for o in held["objects"]} == {
        (i, len(b), True) for i, b, _ in objects
    }
    for index, sealed, _ in objects:
        assert ctx.stored_objects().content(sent.transfer_id, index) == sealed
    # audited as an upload that began, once
    assert [a[1] for a in await audit_since(ctx, count)] == ["upload-begun", "holdings-read"]

    # after redemption, each opens as what was sealed
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    for index, sealed, _ in objects:
        r = await ctx.call(
            "GET", f"/api/v1/transfers/{sent.transfer_id}/objects/{index}", cred=ctx.tc
        )
        assert r.body == sealed
        opened = open_object(sent.data_key, sent.transfer_id, index, r.body)
        assert opened == f"image {index} ".encode() * (100 + index)


@pytest.mark.asyncio
async def test_a_batch_sent_again_is_taken_again_but_not_with_other_contents(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    objects = [_sealed(sent, i, b"slice %d" % i * 50) for i in range(3)]
    assert (await _post(ctx, sent, wire.pack_objects(objects))).status == 200
    # the answer was lost: the same batch, with one more object
    more = [*objects, _sealed(sent, 3, b"more" * 50)]
    assert (await _post(ctx, sent, wire.pack_objects(more))).status == 200
    assert len((await holdings(ctx, sent))["objects"]) == 4
    # other bytes for an object already complete: refused, and nothing of the batch kept
    other = [_sealed(sent, 0, b"other" * 50), _sealed(sent, 4, b"new" * 50)]
    r = await _post(ctx, sent, wire.pack_objects(other))
    assert_clear_refusal(r, 422)
    assert {o["index"] for o in (await holdings(ctx, sent))["objects"]} == {0, 1, 2, 3}
    assert ctx.stored_objects().content(sent.transfer_id, 0) == objects[0][1]


@pytest.mark.asyncio
async def test_an_object_partly_held_is_left_to_resume_on_its_own(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    index, sealed, digest = _sealed(sent, 0, bytes(range(256)) * 40)
    path = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    r = await ctx.call(
        "PATCH", path, cred=ctx.er, data=sealed[:1000], headers={"Upload-Offset": "0"}
    )
    assert r.status == 200
    r = await _post(ctx, sent, wire.pack_objects([(index, sealed, digest)]))
    assert_clear_refusal(r, 409)
    assert r.body["offset"] == 1000
    assert (await holdings(ctx, sent))["objects"][0]["offset"] == 1000


@pytest.mark.asyncio
async def test_a_wrong_digest_acknowledges_nothing_of_the_batch(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    good = _sealed(sent, 0, b"good" * 100)
    index, sealed, _ = _sealed(sent, 1, b"bad" * 100)
    r = await _post(ctx, sent, wire.pack_objects([good, (index, sealed, "0" * 64)]))
    assert_clear_refusal(r, 422)
    assert (await holdings(ctx, sent))["objects"] == []
    # sent right, both are taken
    assert (
        await _post(ctx, sent, wire.pack_objects([good, _sealed(sent, 1, b"bad" * 100)]))
    ).status == 200


def _listing(objects: list[dict[str, object]]) -> bytes:
    listing = json.dumps({"objects": objects}).encode()
    return len(listing).to_bytes(4, "big") + listing


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x05{}",
        _listing([]),
        b"\x00\x00\x00\x02[]",
        _listing([{"index": 0, "size": 3}]) + b"abc",
        _listing([{"index": 0, "size": 3, "sha256": "x" * 64}]) + b"abc",
        _listing([{"index": True, "size": 3, "sha256": "0" * 64}]) + b"abc",
        _listing([{"index": 0, "size": 0, "sha256": "0" * 64}]),
        _listing([{"index": 1, "size": 1, "sha256": "0" * 64}] * 2) + b"ab",
        _listing(
            [
                {"index": 2, "size": 1, "sha256": "0" * 64},
                {"index": 1, "size": 1, "sha256": "0" * 64},
            ]
        )
        + b"ab",
        _listing(
            [{"index": i, "size": 1, "sha256": "0" * 64} for i in range(wire.BATCH_OBJECTS + 1)]
        ),
        _listing([{"index": 0, "size": wire.BATCH_UPLOAD_BYTES + 1, "sha256": "0" * 64}]),
        b"\xff\xff\xff\xff",
        MAX_LISTING.to_bytes(4, "big") + b"[" * MAX_LISTING,  # nested past Python's depth
    ],
)
async def test_a_malformed_batch_is_refused_and_keeps_nothing(ctx: Ctx, body: bytes) -> None:
    sent = await create_transfer(ctx)
    assert_clear_refusal(await _post(ctx, sent, body), 400, 413)
    assert (await holdings(ctx, sent))["objects"] == []


@pytest.mark.asyncio
async def test_a_body_cut_short_or_running_on_is_refused(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    index, sealed, digest = _sealed(sent, 0, b"slice" * 100)
    body = wire.pack_objects([(index, sealed, digest)])
    for wrong in (body[:-1], body + b"x"):
        assert_clear_refusal(await _post(ctx, sent, wrong), 400)
        assert (await holdings(ctx, sent))["objects"] == []
    assert (await _post(ctx, sent, body)).status == 200


@pytest.mark.asyncio
async def test_only_the_sender_uploads_and_only_while_open(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    body = wire.pack_objects([_sealed(sent, 0, b"slice" * 100)])
    path = f"/api/v1/transfers/{sent.transfer_id}/objects"
    assert_clear_refusal(await ctx.call("POST", path, cred=ctx.tc, data=body), 403, 404)
    await upload(ctx, sent, 1, b"other")
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200, r
    assert_clear_refusal(await _post(ctx, sent, body), 409)


@pytest.mark.asyncio
async def test_a_batch_past_the_transfers_bytes_keeps_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, max_transfer_bytes=4000) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        sent = await create_transfer(ctx)
        objects = [_sealed(sent, i, bytes([i]) * 1500) for i in range(3)]
        r = await _post(ctx, sent, wire.pack_objects(objects))
        assert_clear_refusal(r, 413)
        assert "Nothing of it was kept" in r.body["detail"]
        assert (await holdings(ctx, sent))["objects"] == []
        assert (await _post(ctx, sent, wire.pack_objects(objects[:2]))).status == 200


@pytest.mark.asyncio
async def test_leftovers_of_writes_never_acknowledged_are_dropped(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    objects = [_sealed(sent, i, bytes([i]) * 3000) for i in range(4)]
    stored = ctx.stored_objects()
    stored.leave(sent.transfer_id, 1, 0, b"x" * 5000)  # longer than the object
    stored.leave(sent.transfer_id, 2, 4000, b"y" * 10)  # past its end
    stored.leave(sent.transfer_id, 5, 0, b"z" * 10)  # another object, not in the batch
    assert (await _post(ctx, sent, wire.pack_objects(objects[1:3]))).status == 200
    assert (await _post(ctx, sent, wire.pack_objects([objects[0], objects[3]]))).status == 200
    for index, sealed, _ in objects:
        assert stored.content(sent.transfer_id, index) == sealed
    assert stored.content(sent.transfer_id, 5) == b"z" * 10

    # fetched in one batch, each is what was acknowledged
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/objects/fetch",
        cred=ctx.tc,
        json={"indices": [3, 1, 2, 0]},
    )
    assert r.status == 200, r
    frames = r.body
    for index in (3, 1, 2, 0):
        assert wire.read_object_frame(frames[: wire.OBJECT_FRAME.size]) == (
            index,
            len(objects[index][1]),
        )
        frames = frames[wire.OBJECT_FRAME.size :]
        assert frames[: len(objects[index][1])] == objects[index][1]
        frames = frames[len(objects[index][1]) :]
    assert frames == b""


@pytest.mark.asyncio
async def test_a_full_batch_is_taken(ctx: Ctx) -> None:
    """As many objects as a batch may hold (more than the connections PostgreSQL keeps for
    write locks: the batch's locks share one)."""
    sent = await create_transfer(ctx)
    objects = [_sealed(sent, i, b"%d" % i * 40) for i in range(wire.BATCH_OBJECTS)]
    assert (await _post(ctx, sent, wire.pack_objects(objects))).status == 200
    held = (await holdings(ctx, sent))["objects"]
    assert [(o["index"], o["complete"]) for o in held] == [(i, True) for i in range(len(objects))]
