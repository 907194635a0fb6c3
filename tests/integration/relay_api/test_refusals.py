"""What a refused redemption says beyond "not accepted", and only to whom it cannot help a
guesser: how many tries are left (a wrong code for a live transfer the locator found), and that
the patient or family cancelled the transfer (the right code, or QR, of such a transfer)."""

from __future__ import annotations

import json

import pytest
from relay_harness import RECEIVER

from relay.appkeys import METADATA
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    Reply,
    Sent,
    code_proof,
    create_transfer,
    redeem,
    redeem_capability,
    salt,
    state_of,
    sweep,
    unused_locator,
    wrong_proof,
)
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode

BROWSER = {"Cookie": "tr_csrf=abc", "X-CSRF-Token": "abc"}
CANCELLED = "This transfer was cancelled by the patient or family"


async def cancel_on_the_phone(ctx: Ctx, sent: Sent) -> None:
    r = await ctx.call("POST", "/api/v1/phone/revoke", json={"token": sent.token}, headers=BROWSER)
    assert (r.status, r.body["state"]) == (200, "revoked"), r


async def locators_in_use(ctx: Ctx) -> set[int]:
    """The locators the relay will not give a new transfer to this trauma center."""
    assert ctx.relay.app is not None
    async with ctx.relay.app[METADATA].transaction() as tx:
        return await tx.locators_in_use(RECEIVER)


def refused_plainly(r: Reply) -> bool:
    return r.problem == REFUSED and "attempts_left" not in r.body


@pytest.mark.asyncio
async def test_a_wrong_code_for_a_live_transfer_says_how_many_tries_are_left(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    for n in range(1, MAX_FAILED_ATTEMPTS):
        r = await redeem(ctx, sent.locator, wrong_proof())
        left = MAX_FAILED_ATTEMPTS - n
        assert (r.status, r.code, r.body["attempts_left"]) == (403, "code-not-accepted", left)
        tries = "1 more try" if left == 1 else f"{left} more tries"
        assert f"{tries} before the transfer locks" in r.body["detail"]
    last = await redeem(ctx, sent.locator, wrong_proof())
    assert (last.code, last.body["attempts_left"]) == ("code-not-accepted", 0)
    assert "that was the last try: the transfer is now locked" in last.body["detail"]
    assert await state_of(ctx, sent) == ("locked", MAX_FAILED_ATTEMPTS)
    # Locked: no count any more, the plain refusal, even for the right code.
    assert refused_plainly(await redeem(ctx, sent.locator, wrong_proof()))
    assert refused_plainly(await redeem(ctx, sent.locator, await code_proof(ctx, sent.code)))


@pytest.mark.asyncio
async def test_a_wrong_qr_proof_counts_down_too(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await redeem_capability(ctx, Capability.generate(sent.transfer_id))
    assert (r.code, r.body["attempts_left"]) == ("code-not-accepted", MAX_FAILED_ATTEMPTS - 1)


@pytest.mark.asyncio
async def test_no_count_where_no_live_transfer_was_found(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    used = await create_transfer(ctx)
    assert (await redeem(ctx, used.locator, await code_proof(ctx, used.code))).status == 200
    answers = [
        await redeem(ctx, unused_locator(sent, used), wrong_proof()),
        await redeem(ctx, used.locator, wrong_proof()),
        await redeem_capability(ctx, Capability.generate(used.transfer_id)),
    ]
    assert all(refused_plainly(r) for r in answers), answers
    assert len({json.dumps(r.body, sort_keys=True) for r in answers}) == 1


@pytest.mark.asyncio
async def test_the_right_code_of_a_transfer_the_family_cancelled_is_told_so(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    salt_before = await salt(ctx, sent.locator)
    await cancel_on_the_phone(ctx, sent)
    assert ctx.rows("SELECT count(*) FROM key_locks WHERE transfer_id = ?", sent.transfer_id) == [
        (0,)
    ]

    # The right code (its salt is still the real one), and the QR.
    assert await salt(ctx, sent.locator) == salt_before
    for r in (
        await redeem(ctx, sent.locator, await code_proof(ctx, sent.code)),
        await redeem_capability(ctx, sent.capability),
    ):
        assert (r.status, r.code) == (410, "revoked")
        assert r.body["detail"].startswith(CANCELLED)
        assert "call the sending hospital" not in r.body["detail"]

    # Anything else learns nothing, and counts nothing.
    other = RedemptionCode.generate(sent.locator)
    assert refused_plainly(await redeem(ctx, sent.locator, await code_proof(ctx, other)))
    assert refused_plainly(await redeem_capability(ctx, Capability.generate(sent.transfer_id)))
    assert await state_of(ctx, sent) == ("revoked", 0)

    # Still after the sweeper purged it, and its locator is not given to a new transfer.
    assert await sweep(ctx) == 1
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert r.body["detail"].startswith(CANCELLED)
    assert ctx.rows("SELECT count(*) FROM cancelled_locks") == [(2,)]
    assert ctx.rows("SELECT locator FROM transfers WHERE purged = 0") == []
    assert sent.locator in await locators_in_use(ctx)

    # Once the transfer would have expired, the kept salt and verifier go: the plain refusal.
    ctx.clock.advance(sent.expires_at - ctx.clock() + 1)
    await sweep(ctx)
    assert ctx.rows("SELECT count(*) FROM cancelled_locks") == [(0,)]
    assert sent.locator not in await locators_in_use(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).problem == REFUSED


@pytest.mark.asyncio
async def test_a_transfer_the_sender_revoked_still_gets_the_plain_refusal(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200
    assert refused_plainly(await redeem(ctx, sent.locator, await code_proof(ctx, sent.code)))
    assert ctx.rows("SELECT count(*) FROM cancelled_locks") == [(0,)]
