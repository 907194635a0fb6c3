"""The sending site holds the patient's authorization link, so it could record "patient"
consent itself. An authorization from an address the sending site used for the transfer is
flagged: audited as a security alert, and shown to the trauma center with the redemption and
to the sender in the status. Behind a trusted proxy the client's address is the forwarded one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from relay_harness import FakeClock, running_relay

from relay_api.plumbing import Ctx, Sent, code_proof, create_transfer, redeem, status

ER_HOST = "192.0.2.10"  # the sending agent, as the proxy forwards it
PHONE = "198.51.100.20"  # a family member's phone


@pytest_asyncio.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, trusted_proxies=("127.0.0.1",)) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http)


async def _sent_from_er(ctx: Ctx) -> Sent:
    """A transfer created and keyed from the ER's address (through the proxy)."""
    ctx.forwarded_for = ER_HOST
    try:
        return await create_transfer(ctx, authorize=False)
    finally:
        ctx.forwarded_for = None


async def _authorize_from(ctx: Ctx, token: str, address: str) -> None:
    r = await ctx.call(
        "POST",
        "/api/v1/authorizations",
        json={"token": token},
        headers={"X-Forwarded-For": address},
    )
    assert (r.status, r.body["state"]) == (200, "authorized"), r


@pytest.mark.asyncio
@pytest.mark.parametrize(("phone_address", "flagged"), [(ER_HOST, True), (PHONE, False)])
async def test_consent_from_the_senders_own_address_is_flagged(
    proxied: Ctx, phone_address: str, flagged: bool
) -> None:
    ctx = proxied
    sent = await _sent_from_er(ctx)
    await _authorize_from(ctx, sent.token, phone_address)
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert r.status == 200, r
    assert r.body["consent_from_sending_site"] is flagged
    seen_by_er = await status(ctx, sent)
    assert seen_by_er.body["consent_from_sending_site"] is flagged
    records = await ctx.audit_records()
    alerts = [r for r in records if r["action"] == "consent-from-sending-site"]
    assert len(alerts) == int(flagged)
    (authorization,) = [r for r in records if r["action"] == "patient-authorization"]
    assert authorization["remote"] == phone_address


@pytest.mark.asyncio
async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock) as relay,  # no trusted proxy
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        sent = await create_transfer(ctx, authorize=False)
        await _authorize_from(ctx, sent.token, ER_HOST)
        records = await ctx.audit_records()
        (authorization,) = [r for r in records if r["action"] == "patient-authorization"]
        assert authorization["remote"] == "127.0.0.1"
        r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
        assert r.body["consent_from_sending_site"] is False  # loopback tells nothing


@pytest.mark.asyncio
async def test_a_proxy_adding_its_own_forwarded_field_is_believed_not_the_clients(
    proxied: Ctx,
) -> None:
    """A proxy that adds its own X-Forwarded-For field (HAProxy's `option forwardfor`), after
    one the client wrote itself: the client's address is the one the proxy wrote, the last."""
    ctx = proxied
    sent = await create_transfer(ctx, authorize=False)
    forged = "203.0.113.66"
    headers = [("X-Forwarded-For", forged), ("X-Forwarded-For", PHONE)]
    async with ctx.http.post(
        f"{ctx.relay.url}/api/v1/authorizations", json={"token": sent.token}, headers=headers
    ) as r:
        assert r.status == 200, await r.text()
    records = await ctx.audit_records()
    (authorization,) = [r for r in records if r["action"] == "patient-authorization"]
    assert authorization["remote"] == PHONE
