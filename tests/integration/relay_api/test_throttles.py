"""Guessing is throttled across transfers, not only per transfer: a receiving site, a client
address and the relay as a whole each get a number of failures in a window. One guesser cannot
spend the ten tries of every transfer waiting for a trauma center, and an honest site is not
slowed by it. A flood of bad credentials does not grow the audit trail one record per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from relay_harness import FakeClock, running_relay

from relay.api import auth
from relay.appkeys import SUPPRESSED
from relay.sites import add_site
from relay_api.plumbing import (
    Ctx,
    code_proof,
    create_transfer,
    redeem,
    wrong_proof,
)

LIMITS = {
    "guess_limit_site": 3,
    "guess_limit_address": 1000,
    "guess_limit_global": 1000,
    "guess_window": 600.0,
}


@pytest_asyncio.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, **LIMITS) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http)


def _failed_attempts(ctx: Ctx) -> dict[str, int]:
    return dict(ctx.rows("SELECT id, failed_attempts FROM transfers"))


@pytest.mark.asyncio
async def test_a_guessing_site_is_stopped_before_it_locks_every_transfer(limited: Ctx) -> None:
    ctx = limited
    waiting = [await create_transfer(ctx) for _ in range(6)]
    for sent in waiting[:3]:
        r = await redeem(ctx, sent.locator, wrong_proof())
        assert (r.status, r.code) == (403, "code-not-accepted")
    r = await redeem(ctx, waiting[3].locator, wrong_proof())
    assert (r.status, r.code) == (429, "throttled")
    assert r.headers["Retry-After"] == "600"
    assert "Try again in 10 minutes" in r.body["detail"]
    # the throttled attempt cost the transfer nothing
    assert sorted(_failed_attempts(ctx).values()) == [0, 0, 0, 1, 1, 1]
    # the engagement is audited once, as a security alert
    records = await ctx.audit_records()
    throttled = [r for r in records if r["action"] == "guessing-throttled"]
    assert len(throttled) == 1
    assert json.loads(throttled[0]["detail"])["limits"] == ["site"]
    # once the window has passed, the right code still works
    ctx.clock.advance(601)
    r = await redeem(ctx, waiting[5].locator, await code_proof(ctx, waiting[5].code))
    assert r.status == 200, r


@pytest.mark.asyncio
async def test_another_trauma_center_is_not_slowed(limited: Ctx) -> None:
    ctx = limited
    other = await add_site(ctx.relay.data_dir, "other-trauma", "receiving", "Other Trauma")
    sent = await create_transfer(ctx)
    for _ in range(3):
        await redeem(ctx, sent.locator, wrong_proof(), cred=other.credential)
    r = await redeem(ctx, sent.locator, wrong_proof(), cred=other.credential)
    assert (r.status, r.code) == (429, "throttled")
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert r.status == 200, r  # the rightful trauma center redeems


@pytest.mark.asyncio
async def test_a_right_proof_not_yet_authorized_is_no_guess(limited: Ctx) -> None:
    ctx = limited
    sent = await create_transfer(ctx, authorize=False)
    proof = await code_proof(ctx, sent.code)
    for _ in range(5):
        r = await redeem(ctx, sent.locator, proof)
        assert (r.status, r.code) == (409, "awaiting-authorization"), r


@pytest.mark.asyncio
async def test_phone_link_guesses_from_one_address_are_throttled(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, guess_limit_address=4) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        answers = [
            (await ctx.call("POST", "/api/v1/authorizations", json={"token": "A" * 48})).status
            for _ in range(6)
        ]
        assert answers == [404, 404, 404, 404, 429, 429]
        sent = await create_transfer(ctx, authorize=False)
        r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
        assert r.status == 429  # from this address, for now
        clock.advance(15 * 60 + 1)
        r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
        assert (r.status, r.body["state"]) == (200, "authorized")


@pytest.mark.asyncio
async def test_a_flood_of_bad_credentials_is_summed_up_in_the_audit_trail(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, refusals_audited_per_minute=5) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        before = len(await ctx.audit_records())
        for _ in range(25):
            r = await ctx.call("GET", "/api/v1/sites", cred="x" * 43)
            assert r.status == 401
        records = (await ctx.audit_records())[before:]
        assert len(records) == 5
        clock.advance(61)
        await ctx.call("GET", "/api/v1/sites", cred="x" * 43)
        last = (await ctx.audit_records())[-1]
        assert json.loads(last["detail"])["suppressed_before"] == 20


@pytest.mark.asyncio
async def test_strangers_links_that_lead_nowhere_do_not_stop_a_trauma_center_redeeming(
    tmp_path: Path,
) -> None:
    """Anyone can send phone links. Links that lead nowhere are counted against the address
    that sent them, apart from redemptions: a stranger sending many does not use up the
    relay-wide limit of redemptions, nor the count of an address a trauma center shares."""
    clock = FakeClock()
    async with (
        running_relay(
            tmp_path / "relay",
            clock=clock,
            guess_limit_global=3,
            guess_limit_address=3,
            trusted_proxies=("127.0.0.1",),
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        trauma_center = Ctx(relay, clock, http, forwarded_for="198.51.100.7")
        sent = await create_transfer(trauma_center)
        for stranger in (
            Ctx(relay, clock, http, forwarded_for="203.0.113.9"),
            trauma_center,  # a guesser behind the trauma center's own address
        ):
            for _ in range(3):
                r = await stranger.call("POST", "/api/v1/authorizations", json={"token": "A" * 48})
                assert r.status == 404
            r = await stranger.call("POST", "/api/v1/authorizations", json={"token": "A" * 48})
            assert (r.status, r.code) == (429, "throttled")
            assert "links that lead nowhere" in r.body["detail"]
        r = await redeem(trauma_center, sent.locator, await code_proof(trauma_center, sent.code))
        assert r.status == 200, r


@pytest.mark.asyncio
async def test_a_trauma_center_throttled_by_the_relay_wide_limit_is_not_told_it_guessed(
    tmp_path: Path,
) -> None:
    """Another trauma center's wrong codes can use up the relay-wide limit; the trauma center
    then refused did not send them, and is not told that they "came from here"."""
    clock = FakeClock()
    async with (
        running_relay(
            tmp_path / "relay", clock=clock, guess_limit_global=3, trusted_proxies=("127.0.0.1",)
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        trauma_center = Ctx(relay, clock, http, forwarded_for="198.51.100.7")
        sent = await create_transfer(trauma_center)
        other = await add_site(relay.data_dir, "other-trauma", "receiving", "Other Trauma")
        guesser = Ctx(relay, clock, http, forwarded_for="203.0.113.9")
        for _ in range(3):
            r = await redeem(guesser, sent.locator, wrong_proof(), cred=other.credential)
            assert (r.status, r.code) == (403, "code-not-accepted")
        r = await redeem(trauma_center, sent.locator, await code_proof(trauma_center, sent.code))
        assert (r.status, r.code) == (429, "throttled")
        assert "came from here" not in r.body["detail"]
        assert "on this relay recently, not only from here" in r.body["detail"]
        # from the guesser's own address, it did come from there
        r = await redeem(guesser, sent.locator, wrong_proof(), cred=other.credential)
        assert (r.status, r.code) == (429, "throttled")


@pytest.mark.asyncio
async def test_a_restart_does_not_give_a_guesser_new_tries(tmp_path: Path) -> None:
    """The embedded store keeps the failures too: a relay restarted (by its operator, or by a
    crash the guesser caused) still holds back the site that guessed, until the window ends."""
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, **LIMITS) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        waiting = [await create_transfer(ctx) for _ in range(5)]
        for sent in waiting[:3]:
            r = await redeem(ctx, sent.locator, wrong_proof())
            assert (r.status, r.code) == (403, "code-not-accepted")
        credentials = (relay.sender_credential, relay.receiver_credential)
    clock.advance(60)
    async with (
        running_relay(tmp_path / "relay", clock=clock, registered=credentials, **LIMITS) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        r = await redeem(ctx, waiting[3].locator, wrong_proof())
        assert (r.status, r.code) == (429, "throttled")
        assert r.headers["Retry-After"] == "540"  # what is left of the window, not a new one
        assert sorted(_failed_attempts(ctx).values()) == [0, 0, 1, 1, 1]
        clock.advance(541)
        r = await redeem(ctx, waiting[4].locator, await code_proof(ctx, waiting[4].code))
        assert r.status == 200, r


@pytest.mark.asyncio
async def test_wrong_codes_sent_at_once_are_throttled_as_if_sent_one_by_one(limited: Ctx) -> None:
    """A guesser does not wait for one answer before sending the next: wrong codes sent all at
    once still get no more tries than the limit, and the rest cost their transfers nothing."""
    ctx = limited
    waiting = [await create_transfer(ctx) for _ in range(8)]
    answers = await asyncio.gather(*(redeem(ctx, s.locator, wrong_proof()) for s in waiting))
    codes = sorted(r.code for r in answers)
    assert codes == ["code-not-accepted"] * 3 + ["throttled"] * 5, codes
    assert sorted(_failed_attempts(ctx).values()) == [0] * 5 + [1] * 3


@pytest.mark.asyncio
async def test_refusals_counted_for_too_many_addresses_are_summed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusals not yet audited are counted per address; addresses that each send a few bad
    credentials and never come back do not grow that count without bound: past the limit, the
    address counted longest is audited with its count, and nothing is lost."""
    monkeypatch.setattr(auth, "MAX_SUPPRESSED", 2)
    clock = FakeClock()
    async with (
        running_relay(
            tmp_path / "relay",
            clock=clock,
            refusals_audited_per_minute=1,
            trusted_proxies=("127.0.0.1",),
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        before = len(await ctx.audit_records())
        addresses = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        for address in addresses:
            ctx.forwarded_for = address
            for _ in range(4):  # one audited, three counted
                r = await ctx.call("GET", "/api/v1/sites", cred="x" * 43)
                assert r.status == 401
        assert relay.app is not None
        assert relay.app[SUPPRESSED] == {"192.0.2.2": 3, "192.0.2.3": 3}
        records = (await ctx.audit_records())[before:]
        assert [(r["remote"], json.loads(r["detail"]).get("suppressed")) for r in records] == [
            ("192.0.2.1", None),
            ("192.0.2.2", None),
            ("192.0.2.3", None),
            ("192.0.2.1", 3),  # summed up when the third address was first counted
        ]
        assert all(r["outcome"] == "failure" for r in records)
