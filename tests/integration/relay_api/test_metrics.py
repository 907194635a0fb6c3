"""The relay's /metrics: counts and sizes a Prometheus server scrapes, for this machine (and
the addresses configured) only; no transfer id, credential or PHI in them."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from relay_harness import FakeClock, running_relay

from relay_api.plumbing import (
    Ctx,
    code_proof,
    create_transfer,
    redeem,
    sweep,
    upload,
    wrong_proof,
)


async def _scrape(ctx: Ctx) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await ctx.call("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.asyncio
async def test_metrics_count_what_the_relay_did(ctx: Ctx) -> None:
    first = await _scrape(ctx)
    assert first[("trauma_relay_upload_bytes_total", ())] == 0
    # an alert on a rising count has a series to watch before the first throttled attempt
    assert first[("trauma_relay_throttled_requests_total", (("kind", "guessing"),))] == 0
    sent = await create_transfer(ctx)
    waiting = await create_transfer(ctx, authorize=False)
    sealed = await upload(ctx, sent, 0, b"slice" * 1000)
    assert (await redeem(ctx, waiting.locator, wrong_proof())).status == 403
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert r.status == 200
    downloaded = await ctx.call(
        "GET", f"/api/v1/transfers/{sent.transfer_id}/objects/0", cred=ctx.tc
    )
    assert downloaded.body == sealed
    await ctx.call("GET", "/api/v1/sites", cred="x" * 43)
    await sweep(ctx)

    after = await _scrape(ctx)
    assert after[("trauma_relay_upload_bytes_total", ())] == len(sealed)
    assert after[("trauma_relay_download_bytes_total", ())] == len(sealed)
    assert after[("trauma_relay_redemption_failures_total", ())] == 1
    assert after[("trauma_relay_refused_credentials_total", ())] == 1
    assert after[("trauma_relay_transfers", (("state", "redeemed"),))] == 1
    assert after[("trauma_relay_transfers", (("state", "awaiting_authorization"),))] == 1
    assert after[("trauma_relay_transfers", (("state", "delivered"),))] == 0
    assert after[("trauma_relay_stored_bytes", ())] == len(sealed)
    assert after[("trauma_relay_disk_free_bytes", ())] > 0
    text = (await ctx.call("GET", "/metrics")).body.decode()
    for secret in (sent.transfer_id, ctx.er, ctx.tc, sent.code.grouped()):
        assert secret not in text


@pytest.mark.asyncio
async def test_metrics_are_not_for_everyone(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, trusted_proxies=("127.0.0.1",)) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        ctx.forwarded_for = "198.51.100.7"  # a client on the internet, through the proxy
        assert (await ctx.call("GET", "/metrics")).status == 404
        ctx.forwarded_for = None
        assert (await ctx.call("GET", "/metrics")).status == 200


async def _append(ctx: Ctx, transfer_id: str, index: int, offset: int, size: int) -> None:
    r = await ctx.call(
        "PATCH",
        f"/api/v1/transfers/{transfer_id}/objects/{index}",
        cred=ctx.er,
        data=b"s" * size,
        headers={"Upload-Offset": str(offset)},
    )
    assert (r.status, r.body["offset"]) == (200, offset + size), r


@pytest.mark.asyncio
async def test_stored_bytes_follow_every_chunk_and_stop_counting_a_revoked_transfer(
    ctx: Ctx,
) -> None:
    first = await create_transfer(ctx)
    second = await create_transfer(ctx)
    await _append(ctx, first.transfer_id, 0, 0, 300)
    await _append(ctx, first.transfer_id, 0, 300, 200)  # a later chunk of the same object
    await _append(ctx, first.transfer_id, 1, 0, 70)
    sealed = await upload(ctx, second, 0, b"slice" * 100)
    assert (await _scrape(ctx))[("trauma_relay_stored_bytes", ())] == 570 + len(sealed)
    r = await ctx.call("POST", f"/api/v1/transfers/{first.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200, r
    assert (await _scrape(ctx))[("trauma_relay_stored_bytes", ())] == len(sealed)
