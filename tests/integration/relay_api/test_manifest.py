"""The manifest: records in order, long-poll reads, bounds, and their audit."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable

import pytest
from relay_harness import RECEIVER, SENDER

from relay import audit
from relay.api.uploads import PAGE_BYTES
from relay.appkeys import MANIFEST_EVENTS
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import (
    PROBLEM,
    Ctx,
    _in_pieces,
    assert_clear_refusal,
    audit_since,
    code_proof,
    create_transfer,
    holdings,
    put_record,
    redeem,
    upload,
)
from transfer_codes.manifest import MAX_RECORD_SIZE
from transfer_codes.tokens import new_transfer_id


@pytest.mark.asyncio
async def test_manifest_records_in_order_idempotent_and_closed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await put_record(ctx, sent, 1, b"first entry", final=False)
    assert (r.status, r.code) == (400, "bad-request")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await put_record(ctx, sent, 0, b"summary", final=False)
    assert (r.status, r.body) == (200, {"seq": 0, "final": False})
    for different in (b"other summary", b"summary!"):
        r = await put_record(ctx, sent, 0, different, final=False)
        assert (r.status, r.code) == (409, "invalid-state")
    r = await put_record(ctx, sent, 0, b"summary", final=True)
    assert (r.status, r.code) == (409, "invalid-state")
    assert (await put_record(ctx, sent, 2, b"gap", final=False)).status == 400
    assert (await put_record(ctx, sent, 1, b"closing", final=True)).status == 201
    assert (await put_record(ctx, sent, 1, b"closing", final=True)).status == 200
    for seq in (2, 3):
        r = await put_record(ctx, sent, seq, b"late", final=False)
        assert (r.status, r.code) == (409, "invalid-state")
    assert (await put_record(ctx, sent, 2, b"late", final=True)).status == 409

    h = await holdings(ctx, sent)
    assert (h["manifest_records"], h["manifest_closed"]) == (2, True)
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er)
    assert [(x["seq"], x["final"], base64.b64decode(x["record"])) for x in r.body["records"]] == [
        (0, False, b"summary"),
        (1, True, b"closing"),
    ]
    assert r.body["closed"] is True


@pytest.mark.asyncio
async def test_a_manifest_record_arriving_in_pieces_is_stored_whole(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    record = secrets.token_bytes(60_000)  # under the 64 KiB readers accept, in 4 pieces
    r = await ctx.call(
        "PUT",
        f"/api/v1/transfers/{sent.transfer_id}/manifest/0",
        cred=ctx.er,
        data=_in_pieces(record, 4),
        headers={"Manifest-Final": "0"},
    )
    assert r.status == 201, r
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er)
    assert base64.b64decode(r.body["records"][0]["record"]) == record
    # and the same bytes again are recognised as the same record
    assert (await put_record(ctx, sent, 0, record, final=False)).status == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params",
    [
        {"from": "abc"},
        {"from": "1" + "0" * 30},
        {"from": "-" + "1" + "0" * 30},
        {"wait": "soon"},
        {"from": "1.5"},
    ],
)
async def test_bad_manifest_queries_are_refused(ctx: Ctx, params: dict[str, str]) -> None:
    sent = await create_transfer(ctx)
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await ctx.call(
        "GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er, params=params
    )
    assert_clear_refusal(r, 400)


def manifest_watchers(ctx: Ctx) -> dict[str, asyncio.Event]:
    assert ctx.relay.app is not None
    return ctx.relay.app[MANIFEST_EVENTS]


def waiting_on(ctx: Ctx, transfer_id: str) -> int:
    """How many manifest reads wait on the transfer's event."""
    return int(getattr(manifest_watchers(ctx).get(transfer_id), "waiters", 0))


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.mark.asyncio
async def test_manifest_reads_are_audited_once_per_request(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    tid = sent.transfer_id
    for seq in (0, 1):
        assert (await put_record(ctx, sent, seq, b"record %d" % seq, final=False)).status == 201
    path = f"/api/v1/transfers/{tid}/manifest"

    count = len(await ctx.audit_records())
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": "1"})
    assert [x["seq"] for x in r.body["records"]] == [1]
    assert await audit_since(ctx, count) == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", SENDER, {"from": 1, "count": 1})
    ]

    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    # a long poll that runs out: one record however long it waited
    count = len(await ctx.audit_records())
    r = await ctx.call("GET", path, cred=ctx.tc, params={"from": "2", "wait": "0.3"})
    assert (r.status, r.body["records"]) == (200, [])
    assert await audit_since(ctx, count) == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", RECEIVER, {"from": 2, "count": 0})
    ]
    # a long poll woken by a new record: still one record, counting what it returned
    count = len(await ctx.audit_records())
    poll = asyncio.create_task(
        ctx.call("GET", path, cred=ctx.tc, params={"from": "2", "wait": "20"})
    )
    await eventually(lambda: waiting_on(ctx, tid) == 1)
    assert (await put_record(ctx, sent, 2, b"closing", final=True)).status == 201
    r = await poll
    assert [x["seq"] for x in r.body["records"]] == [2]
    reads = [x for x in await audit_since(ctx, count) if x[1] == "manifest-read"]
    assert reads == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", RECEIVER, {"from": 2, "count": 1})
    ]
    assert audit_chain_intact(await ctx.audit_records())


@pytest.mark.asyncio
async def test_a_long_poll_is_woken_by_records_not_by_objects_becoming_whole(ctx: Ctx) -> None:
    """An object is listed only once it is whole: its completion wakes no reader (which would
    read an empty page and ask again), its record does."""
    sent = await create_transfer(ctx)
    tid = sent.transfer_id
    path = f"/api/v1/transfers/{tid}/manifest"
    count = len(await ctx.audit_records())
    poll = asyncio.create_task(ctx.call("GET", path, cred=ctx.er, params={"wait": "20"}))
    await eventually(lambda: waiting_on(ctx, tid) == 1)

    await upload(ctx, sent, 0, b"an image")
    assert waiting_on(ctx, tid) == 1
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await poll

    assert [x["seq"] for x in r.body["records"]] == [0]
    reads = [x for x in await audit_since(ctx, count) if x[1] == "manifest-read"]
    assert reads == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", SENDER, {"from": 0, "count": 1})
    ]


@pytest.mark.asyncio
async def test_manifest_waits_leave_nothing_behind(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    for tid, expected in [(new_transfer_id(), 404), (sent.transfer_id, 200)]:
        for wait in ("0", "0.2"):
            r = await ctx.call(
                "GET",
                f"/api/v1/transfers/{tid}/manifest",
                cred=ctx.er,
                params={"wait": wait},
            )
            assert r.status == expected
            assert manifest_watchers(ctx) == {}, (tid, wait)
    # two waiters share one event; it goes once both are answered
    path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
    polls = [
        asyncio.create_task(ctx.call("GET", path, cred=ctx.er, params={"wait": "20"}))
        for _ in range(2)
    ]
    await eventually(lambda: waiting_on(ctx, sent.transfer_id) == 2)
    assert list(manifest_watchers(ctx)) == [sent.transfer_id]
    assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
    for poll in polls:
        assert len((await poll).body["records"]) == 1
    assert manifest_watchers(ctx) == {}


@pytest.mark.asyncio
async def test_manifest_records_and_pages_are_bounded(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await put_record(ctx, sent, 0, bytes(MAX_RECORD_SIZE + 1), final=False)
    assert r.problem == (
        400,
        PROBLEM + "bad-request",
        f"A manifest record must be 1 to {MAX_RECORD_SIZE} bytes.",
    )
    per_page = PAGE_BYTES // MAX_RECORD_SIZE
    for seq in range(per_page + 1):
        record = seq.to_bytes(4, "big") * (MAX_RECORD_SIZE // 4)
        assert (await put_record(ctx, sent, seq, record, final=False)).status == 201
    path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
    r = await ctx.call("GET", path, cred=ctx.er)
    assert [x["seq"] for x in r.body["records"]] == list(range(per_page))
    assert sum(len(base64.b64decode(x["record"])) for x in r.body["records"]) <= PAGE_BYTES
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": str(per_page)})
    assert [x["seq"] for x in r.body["records"]] == [per_page]
    # small records still page by count
    for seq in range(per_page + 1, 600):
        assert (await put_record(ctx, sent, seq, b"small", final=False)).status == 201
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": str(per_page + 1)})
    assert len(r.body["records"]) == 500
