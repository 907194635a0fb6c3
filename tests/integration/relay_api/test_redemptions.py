"""Redemption and its salt: one-time, and every refusal the same answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from relay import audit
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    assert_clear_refusal,
    assert_unwraps,
    b64,
    code_proof,
    create_transfer,
    locks_body,
    nothing_changes,
    redeem,
    redeem_capability,
    salt,
    state_of,
    sweep,
    unused_locator,
    wrong_proof,
)
from transfer_codes.capability import Capability
from transfer_codes.codes import LOCATOR_LIMIT
from transfer_codes.tokens import new_transfer_id


@pytest.mark.asyncio
async def test_fifty_concurrent_redemptions_exactly_one_succeeds(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    proof = await code_proof(ctx, sent.code)
    replies = await asyncio.gather(*(redeem(ctx, sent.locator, proof) for _ in range(50)))
    winners = [r for r in replies if r.status == 200]
    assert len(winners) == 1
    assert_unwraps(winners[0], sent, sent.code)
    # The spent code is refused as a wrong one would be, so it counts as a guess: past the
    # site's limit (30, attempts under way counted), the rest are throttled instead, untried.
    refused = [r.problem for r in replies if r.status == 403]
    assert refused == [REFUSED] * len(refused)
    assert 29 <= len(refused) <= 30
    assert all(r.status in (200, 403, 429) for r in replies)
    # a spent code is not a wrong code: it neither counts nor locks
    assert await state_of(ctx, sent) == ("redeemed", 0)
    attempts = [
        r
        for r in await ctx.audit_records()
        if r["event_id"] == audit.USER_AUTHENTICATION and r["transfer_id"] == sent.transfer_id
    ]
    assert sorted(r["outcome"] for r in attempts) == ["failure"] * len(refused) + ["success"]


@pytest.mark.asyncio
async def test_every_refusal_is_the_same_answer(ctx: Ctx) -> None:
    short = await create_transfer(ctx, expires_in=60)
    wrong = await create_transfer(ctx)
    used = await create_transfer(ctx)
    revoked = await create_transfer(ctx)
    locked = await create_transfer(ctx)
    proofs = {
        s.transfer_id: await code_proof(ctx, s.code) for s in (short, wrong, used, revoked, locked)
    }

    used_reply = await redeem(ctx, used.locator, proofs[used.transfer_id])
    assert used_reply.status == 200
    r = await ctx.call("POST", f"/api/v1/transfers/{revoked.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200
    for _ in range(MAX_FAILED_ATTEMPTS):
        await redeem(ctx, locked.locator, wrong_proof())
    ctx.clock.advance(61)  # `short` is now past its expiry; the sweeper has not run

    answers = {
        "unknown locator": await redeem(
            ctx, unused_locator(short, wrong, used, revoked, locked), wrong_proof()
        ),
        "used code": await redeem(ctx, used.locator, proofs[used.transfer_id]),
        "expired": await redeem(ctx, short.locator, proofs[short.transfer_id]),
        "revoked": await redeem(ctx, revoked.locator, proofs[revoked.transfer_id]),
        "locked": await redeem(ctx, locked.locator, proofs[locked.transfer_id]),
        "unknown capability": await redeem_capability(ctx, Capability.generate(new_transfer_id())),
        "used capability": await redeem_capability(ctx, used.capability),
        "expired capability": await redeem_capability(ctx, short.capability),
        "revoked capability": await redeem_capability(ctx, revoked.capability),
        "locked capability": await redeem_capability(ctx, locked.capability),
    }
    assert {name: r.problem for name, r in answers.items()} == dict.fromkeys(answers, REFUSED)
    # the bodies are identical to the byte, so nothing else tells them apart either
    assert len({json.dumps(r.body, sort_keys=True) for r in answers.values()}) == 1
    # A wrong code for a live transfer is refused alike, but counts, and says how many tries
    # are left (test_refusals): the locator found a transfer, the proof did not match it.
    wrong_code = await redeem(ctx, wrong.locator, wrong_proof())
    assert wrong_code.problem[:2] == REFUSED[:2]
    assert wrong_code.body["attempts_left"] == MAX_FAILED_ATTEMPTS - 1

    # and still after the sweeper has purged the expired and revoked transfers
    assert await sweep(ctx) == 2
    after = [
        await redeem(ctx, short.locator, proofs[short.transfer_id]),
        await redeem(ctx, revoked.locator, proofs[revoked.transfer_id]),
        await redeem_capability(ctx, short.capability),
    ]
    assert [r.problem for r in after] == [REFUSED] * 3


@pytest.mark.asyncio
async def test_salt_answers_for_unknown_locators_and_is_stable(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    assert sent.code_lock is not None
    assert await salt(ctx, sent.locator) == sent.code_lock.salt
    unknown, other = [n for n in range(3) if n != sent.locator][:2]
    decoy = await salt(ctx, unknown)
    assert len(decoy) == len(sent.code_lock.salt) == 16
    assert await salt(ctx, unknown) == decoy  # stable, as a real transfer's salt is
    assert await salt(ctx, other) not in (decoy, sent.code_lock.salt)
    # a transfer without locks answers like an unknown locator, until its locks are installed
    pending = await create_transfer(ctx, install=False, authorize=False)
    placeholder = await salt(ctx, pending.locator)
    assert await salt(ctx, pending.locator) == placeholder
    r = await ctx.call(
        "PUT",
        f"/api/v1/transfers/{pending.transfer_id}/locks",
        cred=ctx.er,
        json={**await locks_body(pending), "authorization_token": pending.token},
    )
    assert r.status == 200
    assert pending.code_lock is not None
    assert await salt(ctx, pending.locator) == pending.code_lock.salt != placeholder


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        {"locator": -1, "proof": b64(bytes(32))},
        {"locator": LOCATOR_LIMIT, "proof": b64(bytes(32))},
        {"locator": "5", "proof": b64(bytes(32))},
        {"locator": True, "proof": b64(bytes(32))},
        {"locator": 5, "proof": b64(bytes(31))},
        {"locator": 5, "proof": "not base64!"},
        {"locator": 5, "proof": "é" * 44},
        {"locator": 5},
        {"proof": b64(bytes(32))},
        {"transfer_id": 5, "proof": b64(bytes(32))},
        {"transfer_id": "", "proof": b64(bytes(32))},
    ],
)
async def test_malformed_redemptions_are_refused_and_count_nothing(
    ctx: Ctx, body: dict[str, Any]
) -> None:
    sent = await create_transfer(ctx)
    with nothing_changes(ctx):
        r = await ctx.call("POST", "/api/v1/redemptions", cred=ctx.tc, json=body)
    assert_clear_refusal(r, 400)
    assert await state_of(ctx, sent) == ("authorized", 0)
