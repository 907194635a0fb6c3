"""Manifest records in batches (`POST …/manifest`): in order, all or none, idempotent on a
repeat, bounded, for the transfer's sender only, and read back in one page."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from relay_harness import SENDER

from relay.sites import add_site
from relay_api.plumbing import (
    PROBLEM,
    Ctx,
    Reply,
    Sent,
    assert_clear_refusal,
    audit_since,
    create_transfer,
    holdings,
    put_record,
)
from relay_api.test_manifest import eventually, waiting_on
from transfer_codes import wire
from transfer_codes.manifest import MAX_RECORD_SIZE


def records(first: int, count: int, tag: bytes = b"record") -> list[bytes]:
    return [b"%s %d" % (tag, seq) for seq in range(first, first + count)]


async def post_batch(
    ctx: Ctx,
    sent: Sent,
    first: int | str | None,
    batch: list[bytes] | bytes,
    *,
    final: bool = False,
    cred: str | None = "sender",
) -> Reply:
    headers = {"Manifest-Final": "1" if final else "0", "Content-Type": "application/octet-stream"}
    if first is not None:
        headers["Manifest-From"] = str(first)
    body = batch if isinstance(batch, bytes) else wire.pack_records(batch)
    return await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/manifest",
        cred=ctx.er if cred == "sender" else cred,
        data=io.BytesIO(body) if len(body) > 2**20 else body,  # aiohttp warns of large bytes
        headers=headers,
    )


async def stored(ctx: Ctx, sent: Sent) -> list[tuple[int, bool, bytes]]:
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er)
    assert r.status == 200, r
    return [(x["seq"], x["final"], base64.b64decode(x["record"])) for x in r.body["records"]]


@pytest.mark.asyncio
async def test_a_batch_is_stored_in_order_and_a_waiting_reader_gets_it_whole(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await post_batch(ctx, sent, 0, records(0, 10))
    assert (r.status, r.body) == (201, {"from": 0, "count": 10, "stored": 10, "final": False})
    assert await stored(ctx, sent) == [(s, False, b"record %d" % s) for s in range(10)]

    # a reader waiting for what comes after record 9 is answered with the whole next batch
    path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
    poll = asyncio.create_task(
        ctx.call("GET", path, cred=ctx.er, params={"from": "10", "wait": "20"})
    )
    await eventually(lambda: waiting_on(ctx, sent.transfer_id) == 1)
    assert (await post_batch(ctx, sent, 10, records(10, 50))).status == 201
    r = await poll
    assert [x["seq"] for x in r.body["records"]] == list(range(10, 60))

    # the closing record ends a batch: one audit record for the upload's end, as one by one
    count = len(await ctx.audit_records())
    r = await post_batch(ctx, sent, 60, [*records(60, 2), b"closing"], final=True)
    assert (r.status, r.body) == (201, {"from": 60, "count": 3, "stored": 3, "final": True})
    written = [x for x in await audit_since(ctx, count) if x[1] != "site-authentication"]
    assert [(x[1], x[2], x[3]) for x in written] == [("upload-closed", "success", SENDER)]
    h = await holdings(ctx, sent)
    assert (h["manifest_records"], h["manifest_closed"]) == (63, True)
    assert (await stored(ctx, sent))[-3:] == [
        (60, False, b"record 60"),
        (61, False, b"record 61"),
        (62, True, b"closing"),
    ]
    # closed: a repeat of the closing batch is accepted, anything new is refused
    r = await post_batch(ctx, sent, 60, [*records(60, 2), b"closing"], final=True)
    assert (r.status, r.body["stored"]) == (200, 0)
    assert (await put_record(ctx, sent, 62, b"closing", final=True)).status == 200
    r = await post_batch(ctx, sent, 63, records(63, 2))
    assert (r.status, r.code) == (409, "invalid-state")
    r = await post_batch(ctx, sent, 61, [b"record 61", b"closing", b"after"], final=True)
    assert (r.status, r.code) == (409, "invalid-state")
    assert len(await stored(ctx, sent)) == 63


@pytest.mark.asyncio
async def test_a_repeated_batch_is_accepted_and_a_differing_one_stores_nothing(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert (await post_batch(ctx, sent, 0, records(0, 5))).status == 201
    r = await post_batch(ctx, sent, 0, records(0, 5))  # the answer was lost; sent again
    assert (r.status, r.body) == (200, {"from": 0, "count": 5, "stored": 0, "final": False})
    # overlapping what is stored: the stored ones are checked, the rest stored
    r = await post_batch(ctx, sent, 3, records(3, 5))
    assert (r.status, r.body["stored"]) == (201, 3)
    # one record differing from the stored one: refused, and the new ones with it are not kept
    r = await post_batch(ctx, sent, 6, [b"record 6", b"other 7", b"record 8"])
    assert r.problem == (
        409,
        PROBLEM + "invalid-state",
        "Manifest record 7 differs from the stored one.",
    )
    # the same bytes marked closing differ from a stored record that does not close
    r = await post_batch(ctx, sent, 6, records(6, 2), final=True)
    assert (r.status, r.code) == (409, "invalid-state")
    assert (await holdings(ctx, sent))["manifest_records"] == 8
    assert await stored(ctx, sent) == [(s, False, b"record %d" % s) for s in range(8)]
    # one by one and in batches are the same records
    assert (await put_record(ctx, sent, 7, b"record 7", final=False)).status == 200
    assert (await put_record(ctx, sent, 8, b"record 8", final=False)).status == 201
    r = await post_batch(ctx, sent, 8, records(8, 2))
    assert (r.status, r.body["stored"]) == (201, 1)


@pytest.mark.asyncio
async def test_a_batch_past_a_gap_is_refused_and_stores_nothing(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await post_batch(ctx, sent, 1, records(1, 3))
    assert r.problem == (
        400,
        PROBLEM + "bad-request",
        "Manifest records must be sent in order: this relay holds 0 of this transfer's "
        "records, so the next one to send is number 0; nothing was stored.",
    )
    assert (await post_batch(ctx, sent, 0, records(0, 3))).status == 201
    r = await post_batch(ctx, sent, 5, records(5, 3), final=True)
    assert (r.status, r.code) == (400, "bad-request")
    assert "next one to send is number 3" in r.body["detail"]
    h = await holdings(ctx, sent)
    assert (h["manifest_records"], h["manifest_closed"]) == (3, False)


@pytest.mark.asyncio
async def test_batches_are_bounded_and_malformed_ones_refused(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    too_large = (
        413,
        PROBLEM + "too-large",
        f"A batch of manifest records holds at most {wire.BATCH_RECORDS} records and "
        f"{wire.BATCH_BYTES} bytes with their lengths; send the rest in the next one.",
    )
    assert (await post_batch(ctx, sent, 0, records(0, wire.BATCH_RECORDS + 1))).problem == too_large
    largest = [bytes([n]) * MAX_RECORD_SIZE for n in range(16)]  # 16 with lengths: over 1 MiB
    assert (await post_batch(ctx, sent, 0, largest)).problem == too_large
    r = await post_batch(ctx, sent, 0, [b"summary", bytes(MAX_RECORD_SIZE + 1)])
    assert r.problem == (
        400,
        PROBLEM + "bad-request",
        f"A manifest record must be 1 to {MAX_RECORD_SIZE} bytes.",
    )
    for first, body in [
        (0, b""),  # no record
        (0, b"\x00\x00"),  # a length cut short
        (0, b"\x00\x00\x00\x00"),  # an empty record
        (0, b"\x00\x00\x00\x09short"),  # a record cut short
        (0, wire.pack_records([b"summary"]) + b"\x00"),  # something after the last record
        (None, wire.pack_records([b"summary"])),  # no Manifest-From
        ("abc", wire.pack_records([b"summary"])),
        ("-1", wire.pack_records([b"summary"])),
        ("1" + "0" * 30, wire.pack_records([b"summary"])),
    ]:
        assert_clear_refusal(await post_batch(ctx, sent, first, body), 400)
    assert (await holdings(ctx, sent))["manifest_records"] == 0
    # at the bounds: as many records, and as large ones, as fit
    r = await post_batch(ctx, sent, 0, largest[:15])
    assert (r.status, r.body["stored"]) == (201, 15)
    r = await post_batch(ctx, sent, 15, records(15, wire.BATCH_RECORDS))
    assert (r.status, r.body["stored"]) == (201, wire.BATCH_RECORDS)
    assert (await holdings(ctx, sent))["manifest_records"] == 15 + wire.BATCH_RECORDS


@pytest.mark.asyncio
async def test_only_the_transfers_sender_may_send_a_batch(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    other_er = (await add_site(ctx.relay.data_dir, "other-er", "sending", None)).credential
    for cred, status in [(None, 401), ("not-a-credential", 401), (ctx.tc, 403), (other_er, 404)]:
        assert_clear_refusal(await post_batch(ctx, sent, 0, records(0, 2), cred=cred), status)
    assert (await holdings(ctx, sent))["manifest_records"] == 0
    assert (await post_batch(ctx, sent, 0, records(0, 2))).status == 201
