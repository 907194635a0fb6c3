"""What one sending site can take of a relay is bounded: open transfers (and a quarter of a
trauma center's locators, so no sender can use them all up), sealed bytes over its open
transfers and per transfer; and a disk below its reserve takes no new uploads while what it
holds stays intact, with /healthz saying so."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from relay_harness import RECEIVER, FakeClock, running_relay

from relay.desk.sending import LOCATORS_PER_SENDER
from relay.sites import add_site
from relay_api.plumbing import (
    Ctx,
    Reply,
    assert_clear_refusal,
    create_transfer,
    holdings,
    upload,
)
from transfer_codes import wire
from transfer_codes.codes import LOCATOR_LIMIT


async def _patch(ctx: Ctx, transfer_id: str, index: int, size: int) -> Reply:
    return await ctx.call(
        "PATCH",
        wire.sealed_object(transfer_id, index),
        cred=ctx.er,
        data=b"x" * size,
        headers={wire.UPLOAD_OFFSET: "0"},
    )


async def _new_transfer(ctx: Ctx, credential: str) -> tuple[int, str]:
    r = await ctx.call("POST", wire.TRANSFERS, cred=credential, json={"recipient": RECEIVER})
    return r.status, r.code if r.status >= 400 else "created"


@pytest.mark.asyncio
async def test_open_transfers_per_site_are_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, max_open_transfers_per_site=3) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        other = await add_site(relay.data_dir, "other-er", "sending", "Other ER")
        answers = [await _new_transfer(ctx, ctx.er) for _ in range(4)]
        assert answers == [(201, "created")] * 3 + [(429, "site-limit")]
        # another hospital is not stopped by it
        assert await _new_transfer(ctx, other.credential) == (201, "created")
        # revoking one makes room again
        (tid,) = ctx.rows("SELECT id FROM transfers WHERE sender = 'st-mary-er' LIMIT 1")[0]
        r = await ctx.call("POST", wire.transfer_action(tid, "revoke"), cred=ctx.er)
        assert r.status == 200
        assert await _new_transfer(ctx, ctx.er) == (201, "created")


@pytest.mark.asyncio
async def test_no_sender_can_use_up_a_trauma_centers_locators(tmp_path: Path) -> None:
    clock = FakeClock()
    limit = LOCATORS_PER_SENDER + 10
    async with (
        running_relay(tmp_path / "relay", clock=clock, max_open_transfers_per_site=limit) as r,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(r, clock, http)
        assert LOCATORS_PER_SENDER * 4 == LOCATOR_LIMIT
        other = await add_site(r.data_dir, "other-er", "sending", "Other ER")
        made = [await _new_transfer(ctx, ctx.er) for _ in range(LOCATORS_PER_SENDER + 1)]
        assert made[-2:] == [(201, "created"), (429, "site-limit")]
        assert await _new_transfer(ctx, other.credential) == (201, "created")


@pytest.mark.asyncio
async def test_bytes_per_site_and_per_transfer_are_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(
            tmp_path / "relay", clock=clock, site_quota_bytes=6000, max_transfer_bytes=4000
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        first = await create_transfer(ctx)
        await upload(ctx, first, 0, b"a" * 2000)  # sealed: a little more than 2000 bytes
        refused = await _patch(ctx, first.transfer_id, 1, 2500)  # the transfer passes 4000
        assert_clear_refusal(refused, 413)
        assert "Nothing past the last acknowledged byte was kept" in refused.body["detail"]
        second = await create_transfer(ctx)
        await upload(ctx, second, 0, b"c" * 3000)  # the site holds about 5000 now
        third = await create_transfer(ctx)
        refused = await _patch(ctx, third.transfer_id, 0, 2000)  # the site passes 6000
        assert_clear_refusal(refused, 413)
        assert {o["offset"] for o in (await holdings(ctx, third))["objects"]} <= {0}
        # what was acknowledged before is intact
        assert (await holdings(ctx, first))["objects"][0]["complete"] is True
        # a small one still fits
        assert (await _patch(ctx, third.transfer_id, 0, 500)).status == 200


@pytest.mark.asyncio
async def test_a_disk_below_its_reserve_takes_no_new_uploads(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        sent = await create_transfer(ctx)
        await upload(ctx, sent, 0, b"kept" * 100)
        r = await ctx.call("GET", wire.HEALTH)
        assert (r.status, r.body) == (200, {"status": "ok"})
    # a relay whose reserve is larger than any disk here: as if its disk were full
    async with (
        running_relay(tmp_path / "relay2", clock=clock, disk_reserve_bytes=2**62) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        r = await ctx.call("GET", wire.HEALTH)
        assert (r.status, r.body) == (503, {"status": "disk-full"})
        r = await ctx.call("POST", wire.TRANSFERS, cred=ctx.er, json={"recipient": RECEIVER})
        assert (r.status, r.code) == (507, "storage-full")
        assert "what it already holds is safe" in r.body["detail"]
