"""Key locks: lock-out after wrong codes, and re-issue of new locks (a new code)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from relay_harness import RECEIVER

from relay.lifecycle import MAX_FAILED_ATTEMPTS
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    code_proof,
    create_transfer,
    locks_body,
    redeem,
    redeem_capability,
    salt,
    state_of,
    wrong_proof,
)
from sending_site.journal import TransferJournal
from sending_site.push import install_locks
from site_agent.client import RelayClient
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.keys import (
    stretch_capability,
    stretch_code,
    unwrap,
)


@pytest.mark.asyncio
async def test_ten_wrong_codes_lock_and_reissue_brings_a_new_code(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    right = await code_proof(ctx, sent.code)
    for attempt in range(1, MAX_FAILED_ATTEMPTS + 1):
        r = await redeem(ctx, sent.locator, wrong_proof())
        assert r.problem[:2] == REFUSED[:2]
        assert r.body["attempts_left"] == MAX_FAILED_ATTEMPTS - attempt
        expected = "locked" if attempt == MAX_FAILED_ATTEMPTS else "authorized"
        assert await state_of(ctx, sent) == (expected, attempt)
    # the eleventh attempt, with the RIGHT code, gets the very same answer
    assert (await redeem(ctx, sent.locator, right)).problem == REFUSED
    assert (await redeem_capability(ctx, sent.capability)).problem == REFUSED
    assert await state_of(ctx, sent) == ("locked", MAX_FAILED_ATTEMPTS)

    # The sender re-issues from its journal, as `trauma-relay reissue` does: no re-upload.
    old_code, old_capability = sent.code, sent.capability
    journal = TransferJournal(
        transfer_id=sent.transfer_id,
        relay=ctx.relay.url,
        recipient=RECEIVER,
        data_key=sent.data_key,
        locator=sent.locator,
        code=RedemptionCode.generate(sent.locator).compact(),
        capability=Capability.generate(sent.transfer_id).to_text(),
        authorization_token=sent.token,
        expires_at=sent.expires_at,
        objects=[],
    )
    async with RelayClient(ctx.relay.url, ctx.er) as client:
        await install_locks(client, journal, "reissue")
    sent.code = RedemptionCode.parse(journal.code)
    sent.capability = Capability.parse(journal.capability)
    assert await state_of(ctx, sent) == ("authorized", 0)

    # the old code is dead (a receiver stretches it with the salt the relay now gives)
    # (on a live transfer, so each counts: the refusal says how many tries are left)
    r = await redeem(ctx, sent.locator, await code_proof(ctx, old_code))
    assert (r.problem[:2], r.body["attempts_left"]) == (REFUSED[:2], MAX_FAILED_ATTEMPTS - 1)
    r = await redeem_capability(ctx, old_capability)
    assert (r.problem[:2], r.body["attempts_left"]) == (REFUSED[:2], MAX_FAILED_ATTEMPTS - 2)
    new_salt = await salt(ctx, sent.locator)
    unlock = await asyncio.to_thread(stretch_code, sent.code, new_salt)
    r = await redeem(ctx, sent.locator, unlock.proof)
    assert r.status == 200, r
    key = unwrap(base64.b64decode(r.body["wrapped_key"]), unlock, sent.transfer_id)
    assert key == sent.data_key
    assert await state_of(ctx, sent) == ("redeemed", 2)


@pytest.mark.asyncio
async def test_reissue_on_a_live_transfer_kills_the_old_code(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    for _ in range(3):
        assert (await redeem(ctx, sent.locator, wrong_proof())).problem[:2] == REFUSED[:2]
    old_proof = await code_proof(ctx, sent.code)
    old_capability = sent.capability
    sent.code = RedemptionCode.generate(sent.locator)
    sent.capability = Capability.generate(sent.transfer_id)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/reissue",
        cred=ctx.er,
        json=await locks_body(sent),
    )
    assert (r.status, r.body["state"], r.body["locator"]) == (200, "authorized", sent.locator)
    assert await state_of(ctx, sent) == ("authorized", 0)
    assert (await redeem(ctx, sent.locator, old_proof)).problem[:2] == REFUSED[:2]
    assert (await redeem_capability(ctx, old_capability)).problem[:2] == REFUSED[:2]
    r = await redeem_capability(ctx, sent.capability)
    assert r.status == 200, r
    key = unwrap(
        base64.b64decode(r.body["wrapped_key"]),
        stretch_capability(sent.capability),
        sent.transfer_id,
    )
    assert key == sent.data_key


@pytest.mark.asyncio
async def test_reissue_is_refused_after_redemption(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/reissue",
        cred=ctx.er,
        json=await locks_body(sent),
    )
    assert (r.status, r.code) == (409, "invalid-state")
