"""Resumable upload of sealed objects, and the sender's view of what the relay holds."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp
import pytest
from relay_harness import SENDER, FakeClock, running_relay
from yarl import URL

from relay import audit
from relay.appkeys import UPLOAD_LOCKS
from relay_api.plumbing import (
    Ctx,
    _in_pieces,
    assert_clear_refusal,
    audit_since,
    code_proof,
    create_transfer,
    holdings,
    nothing_changes,
    put_record,
    redeem,
    status,
    upload,
)
from transfer_codes.sealed import seal_object


@pytest.mark.asyncio
async def test_patch_at_the_wrong_offset_is_409_with_the_relays_offset(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, bytes(range(256)) * 400)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"

    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[:1000], headers={"Upload-Offset": "0"}
    )
    assert (r.status, r.body["offset"], r.headers["Upload-Offset"]) == (200, 1000, "1000")
    for wrong in ("0", "999", "1001", "5000"):
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=b"junk", headers={"Upload-Offset": wrong}
        )
        assert (r.status, r.code, r.body["offset"]) == (409, "upload-offset-mismatch", 1000)
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": 1000, "complete": False}
    ]
    assert ctx.stored_objects().content(sent.transfer_id, 0) == sealed[:1000]

    # a fresh object starts at 0, whatever the client believes
    r = await ctx.call(
        "PATCH", base[:-1] + "1", cred=ctx.er, data=b"x", headers={"Upload-Offset": "7"}
    )
    assert (r.status, r.body["offset"]) == (409, 0)

    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[1000:], headers={"Upload-Offset": "1000"}
    )
    assert (r.status, r.body["offset"]) == (200, len(sealed))
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": False}
    ]
    assert ctx.stored_objects().content(sent.transfer_id, 0) == sealed


@pytest.mark.asyncio
async def test_complete_checks_size_and_sha256(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, b"an image" * 1000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    await ctx.call("PATCH", base, cred=ctx.er, data=sealed, headers={"Upload-Offset": "0"})
    right = hashlib.sha256(sealed).hexdigest()

    for size, sha in [(len(sealed), "0" * 64), (len(sealed) - 1, right), (len(sealed) + 1, right)]:
        r = await ctx.call(
            "POST", base + "/complete", cred=ctx.er, json={"size": size, "sha256": sha}
        )
        assert (r.status, r.code) == (422, "integrity")
        assert (await holdings(ctx, sent))["objects"][0]["complete"] is False
        assert (await status(ctx, sent)).body["objects_complete"] == 0

    done = {"size": len(sealed), "sha256": right}
    for _ in range(2):  # completing again with the same contents is fine
        r = await ctx.call("POST", base + "/complete", cred=ctx.er, json=done)
        assert (r.status, r.body) == (200, {"index": 0, "complete": True})
    r = await ctx.call(
        "POST", base + "/complete", cred=ctx.er, json={"size": len(sealed), "sha256": "1" * 64}
    )
    assert (r.status, r.code) == (422, "integrity")
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=b"more", headers={"Upload-Offset": str(len(sealed))}
    )
    assert (r.status, r.code) == (409, "invalid-state")
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True}
    ]

    # and the receiver gets exactly these bytes, whole or from an offset
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call("GET", base, cred=ctx.tc)
    assert (r.status, r.body, r.headers["X-Object-SHA256"]) == (200, sealed, right)
    r = await ctx.call("GET", base, cred=ctx.tc, headers={"Range": "bytes=100-"})
    assert (r.status, r.body) == (206, sealed[100:])


@pytest.mark.asyncio
@pytest.mark.parametrize("split", [None, 1000], ids=["one-patch", "two-patches"])
async def test_the_last_patch_can_complete_the_object(ctx: Ctx, split: int | None) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, b"an image" * 1000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    start = 0
    if split is not None:  # the digest then covers bytes of an earlier PATCH, read back
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=sealed[:split], headers={"Upload-Offset": "0"}
        )
        assert (r.status, r.body["complete"]) == (200, False)
        start = split
    ending = {"Upload-Offset": str(start), "Upload-Length": str(len(sealed))}

    r = await ctx.call(
        "PATCH",
        base,
        cred=ctx.er,
        data=sealed[start:],
        headers={**ending, "Upload-SHA256": "0" * 64},
    )
    assert (r.status, r.code) == (422, "integrity")
    # A refused ending is not acknowledged: the relay still holds only what it held before.
    assert (await holdings(ctx, sent))["objects"] == (
        [] if split is None else [{"index": 0, "offset": split, "complete": False}]
    )

    right = hashlib.sha256(sealed).hexdigest()
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[start:], headers={**ending, "Upload-SHA256": right}
    )
    assert (r.status, r.body) == (200, {"offset": len(sealed), "complete": True})
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True}
    ]
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=b"x", headers={**ending, "Upload-SHA256": "1"}
    )
    assert (r.status, r.code) == (400, "bad-request")


@pytest.mark.asyncio
async def test_complete_before_any_bytes_is_refused(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/objects/3/complete",
        cred=ctx.er,
        json={"size": 0, "sha256": hashlib.sha256(b"").hexdigest()},
    )
    assert (r.status, r.code) == (422, "integrity")
    assert (await holdings(ctx, sent))["objects"] == []


@pytest.mark.asyncio
async def test_objects_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, max_object_size=4096) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        sent = await create_transfer(ctx)
        base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=bytes(3000), headers={"Upload-Offset": "0"}
        )
        assert r.status == 200
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=bytes(2000), headers={"Upload-Offset": "3000"}
        )
        assert (r.status, r.code) == (413, "too-large")
        assert (await holdings(ctx, sent))["objects"] == [
            {"index": 0, "offset": 3000, "complete": False}
        ]


@pytest.mark.asyncio
async def test_upload_locks_are_dropped_and_still_exclusive(ctx: Ctx) -> None:
    assert ctx.relay.app is not None
    locks = ctx.relay.app[UPLOAD_LOCKS]
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"first")
    assert locks == {}
    # ten PATCHes race for the start of one object: the lock lets exactly one through
    sealed = seal_object(sent.data_key, sent.transfer_id, 1, b"x" * 100_000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/1"
    replies = await asyncio.gather(
        *(
            ctx.call(
                "PATCH",
                base,
                cred=ctx.er,
                data=_in_pieces(sealed, 2),
                headers={"Upload-Offset": "0"},
            )
            for _ in range(10)
        )
    )
    assert sorted(r.status for r in replies) == [200] + [409] * 9
    assert {r.body["offset"] for r in replies if r.status == 409} == {len(sealed)}
    assert locks == {}
    assert (await holdings(ctx, sent))["objects"][1] == {
        "index": 1,
        "offset": len(sealed),
        "complete": False,
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "index", ["abc", "-1", "1e3", "0x10", "1.5", "%C2%B2", "%D9%A3", "1234567890", "%20"]
)
async def test_non_integer_indices_are_refused(ctx: Ctx, index: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    base = f"{ctx.relay.url}/api/v1/transfers/{sent.transfer_id}"
    with nothing_changes(ctx):
        replies = [
            await ctx.call(
                "PATCH",
                URL(f"{base}/objects/{index}", encoded=True),
                cred=ctx.er,
                data=b"x",
                headers={"Upload-Offset": "0"},
            ),
            await ctx.call(
                "POST",
                URL(f"{base}/objects/{index}/complete", encoded=True),
                cred=ctx.er,
                json={"size": 1, "sha256": "0" * 64},
            ),
            await ctx.call(
                "PUT",
                URL(f"{base}/manifest/{index}", encoded=True),
                cred=ctx.er,
                data=b"record",
            ),
        ]
    for r in replies:
        assert_clear_refusal(r, 400, 404)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "offset",
    [None, "", "-1", "abc", "1.0", "+0", "0x0", "\u00b2", "\u0663", "1" + "0" * 40],
)
async def test_bad_upload_offsets_are_refused(ctx: Ctx, offset: str | None) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    headers = {} if offset is None else {"Upload-Offset": offset}
    path = f"/api/v1/transfers/{sent.transfer_id}/objects/1"
    with nothing_changes(ctx):
        r = await ctx.call("PATCH", path, cred=ctx.er, data=b"junk", headers=headers)
    assert_clear_refusal(r, 400, 409)
    if r.status == 409:
        assert (r.code, r.body["offset"]) == ("upload-offset-mismatch", 0)


@pytest.mark.asyncio
async def test_holdings_reads_are_audited(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"sealed")
    assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
    count = len(await ctx.audit_records())
    assert (await holdings(ctx, sent))["manifest_records"] == 1
    assert await audit_since(ctx, count) == [
        (
            audit.APPLICATION_ACTIVITY,
            "holdings-read",
            "success",
            SENDER,
            {"objects": 1, "records": 1},
        )
    ]
    (record,) = (await ctx.audit_records())[count:]
    assert (record["transfer_id"], record["actor_role"]) == (sent.transfer_id, "sending")
