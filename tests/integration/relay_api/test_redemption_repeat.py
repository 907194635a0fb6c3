"""The relay repeats a redemption whose answer was lost, and nothing else.

A receiving site sends a random `redemption_id` with its proof. Once a transfer is redeemed, the
same site presenting the same id and a right proof gets the same success answer again (audited
as result "repeated", counted as no failure); every other attempt on the redeemed transfer gets
the generic refusal, byte for byte. In-process relay on port 0, real key locks, `FakeClock`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from relay_harness import RECEIVER

from relay import audit
from relay.sites import add_site
from relay_api.plumbing import PROBLEM, REFUSED, Ctx, Reply, b64
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.keys import (
    lock_with_capability,
    lock_with_code,
    new_data_key,
    stretch_capability,
    stretch_code,
    unwrap,
)
from transfer_codes.tokens import new_token


async def attempts(ctx: Ctx, transfer_id: str) -> list[tuple[str, str]]:
    """(outcome, result) of every redeem attempt on `transfer_id`, in order."""
    return [
        (r["outcome"], json.loads(r["detail"]).get("result"))
        for r in await ctx.audit_records()
        if r["event_id"] == audit.USER_AUTHENTICATION and r["transfer_id"] == transfer_id
    ]


@dataclass(frozen=True)
class Sent:
    transfer_id: str
    locator: int
    data_key: bytes
    code: RedemptionCode
    capability: Capability
    salt: bytes


async def authorized_transfer(ctx: Ctx, *, expires_in: int | None = None) -> Sent:
    body: dict[str, Any] = {"recipient": RECEIVER}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.relay.sender_credential, json=body)
    assert r.status == 201, r
    tid, locator = r.body["transfer_id"], r.body["locator"]
    data_key = new_data_key()
    code = RedemptionCode.generate(locator)
    capability = Capability.generate(tid)
    code_lock = await asyncio.to_thread(lock_with_code, data_key, tid, code)
    token = new_token()
    r = await ctx.call(
        "PUT",
        f"/api/v1/transfers/{tid}/locks",
        cred=ctx.relay.sender_credential,
        json={
            "code": code_lock.to_json(),
            "capability": lock_with_capability(data_key, tid, capability).to_json(),
            "authorization_token": token,
        },
    )
    assert r.status == 200, r
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": token})
    assert (r.status, r.body["state"]) == (200, "authorized"), r
    return Sent(tid, locator, data_key, code, capability, code_lock.salt)


async def proof_of(sent: Sent) -> bytes:
    return (await asyncio.to_thread(stretch_code, sent.code, sent.salt)).proof


async def redeem(
    ctx: Ctx,
    sent: Sent,
    proof: bytes,
    redemption_id: bytes | None,
    *,
    cred: str | None = None,
) -> Reply:
    body: dict[str, Any] = {"locator": sent.locator, "proof": b64(proof)}
    if redemption_id is not None:
        body["redemption_id"] = b64(redemption_id)
    return await ctx.call(
        "POST", "/api/v1/redemptions", cred=cred or ctx.relay.receiver_credential, json=body
    )


def new_id() -> bytes:
    return secrets.token_bytes(32)


async def state_of(ctx: Ctx, sent: Sent) -> tuple[str, int]:
    r = await ctx.call(
        "GET", f"/api/v1/transfers/{sent.transfer_id}", cred=ctx.relay.sender_credential
    )
    return r.body["state"], r.body["failed_attempts"]


def unwraps(reply: Reply, sent: Sent) -> bool:
    unlock = stretch_code(sent.code, sent.salt)
    wrapped = base64.b64decode(reply.body["wrapped_key"])
    return unwrap(wrapped, unlock, sent.transfer_id) == sent.data_key


# -- the repeat -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_same_id_and_right_proof_get_the_same_answer_again(ctx: Ctx) -> None:
    sent = await authorized_transfer(ctx)
    proof, rid = await proof_of(sent), new_id()
    first = await redeem(ctx, sent, proof, rid)
    assert first.status == 200, first

    again = await redeem(ctx, sent, proof, rid)

    assert again.status == 200, again
    assert again.body == first.body
    assert unwraps(again, sent)
    assert await state_of(ctx, sent) == ("redeemed", 0)
    assert await attempts(ctx, sent.transfer_id) == [
        ("success", "redeemed"),
        ("success", "repeated"),
    ]


@pytest.mark.asyncio
async def test_a_repeat_by_capability_with_the_same_id_answers_too(ctx: Ctx) -> None:
    sent = await authorized_transfer(ctx)
    rid = new_id()
    assert (await redeem(ctx, sent, await proof_of(sent), rid)).status == 200
    r = await ctx.call(
        "POST",
        "/api/v1/redemptions",
        cred=ctx.relay.receiver_credential,
        json={
            "transfer_id": sent.transfer_id,
            "proof": b64(stretch_capability(sent.capability).proof),
            "redemption_id": b64(rid),
        },
    )
    assert r.status == 200, r
    wrapped = base64.b64decode(r.body["wrapped_key"])
    assert unwrap(wrapped, stretch_capability(sent.capability), sent.transfer_id) == sent.data_key


@pytest.mark.asyncio
async def test_everything_else_on_a_redeemed_transfer_is_the_generic_refusal(ctx: Ctx) -> None:
    sent = await authorized_transfer(ctx)
    proof, rid = await proof_of(sent), new_id()
    assert (await redeem(ctx, sent, proof, rid)).status == 200
    other_tc = (await add_site(ctx.relay.data_dir, "other-trauma", "receiving", None)).credential

    answers = {
        "right proof, no id": await redeem(ctx, sent, proof, None),
        "right proof, another id": await redeem(ctx, sent, proof, new_id()),
        "wrong proof, the same id": await redeem(ctx, sent, secrets.token_bytes(32), rid),
        "another site, the same id and proof": await redeem(ctx, sent, proof, rid, cred=other_tc),
    }

    assert {k: r.problem for k, r in answers.items()} == dict.fromkeys(answers, REFUSED)
    assert len({json.dumps(r.body, sort_keys=True) for r in answers.values()}) == 1
    # none of them counts as a wrong code: a redeemed transfer counts nothing
    assert await state_of(ctx, sent) == ("redeemed", 0)
    assert [o for o, _ in await attempts(ctx, sent.transfer_id)] == ["success"] + ["failure"] * 3


@pytest.mark.asyncio
async def test_no_repeat_after_delivery_or_expiry(ctx: Ctx) -> None:
    delivered = await authorized_transfer(ctx)
    short = await authorized_transfer(ctx, expires_in=60)
    ids = {delivered.transfer_id: new_id(), short.transfer_id: new_id()}
    proofs = {s.transfer_id: await proof_of(s) for s in (delivered, short)}
    for s in (delivered, short):
        assert (await redeem(ctx, s, proofs[s.transfer_id], ids[s.transfer_id])).status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{delivered.transfer_id}/receipt",
        cred=ctx.relay.receiver_credential,
        json={"instances": 1, "bytes": 1, "destination": "folder", "complete": True},
    )
    assert r.status == 200, r
    ctx.clock.advance(61)

    for s in (delivered, short):
        r = await redeem(ctx, s, proofs[s.transfer_id], ids[s.transfer_id])
        assert r.problem == REFUSED, s


@pytest.mark.asyncio
async def test_before_redemption_an_id_changes_nothing_about_the_rules(ctx: Ctx) -> None:
    """A wrong proof with an id still counts; the id of a wrong attempt does not become the
    transfer's, so it cannot be used for a repeat later."""
    sent = await authorized_transfer(ctx)
    wrong_attempt_id = new_id()
    r = await redeem(ctx, sent, secrets.token_bytes(32), wrong_attempt_id)
    assert (r.problem[:2], r.body["attempts_left"]) == (REFUSED[:2], 9)
    assert await state_of(ctx, sent) == ("authorized", 1)
    proof = await proof_of(sent)
    assert (await redeem(ctx, sent, proof, new_id())).status == 200
    assert (await redeem(ctx, sent, proof, wrong_attempt_id)).problem == REFUSED


# -- concurrency ------------------------------------------------------------------------------

SITE_LIMIT = 30  # failed guesses a receiving site may make in the window (`guess_limit_site`)


@pytest.mark.asyncio
async def test_fifty_concurrent_with_different_ids_exactly_one_succeeds(ctx: Ctx) -> None:
    sent = await authorized_transfer(ctx)
    proof = await proof_of(sent)
    replies = await asyncio.gather(*(redeem(ctx, sent, proof, new_id()) for _ in range(50)))
    assert sum(r.status == 200 for r in replies) == 1
    # The 49 others are wrong for the redeemed transfer, so they count as guesses: past the
    # site's limit (30 failures, attempts under way counted), they are throttled instead.
    refused = [r.problem for r in replies if r.status == 403]
    assert refused == [REFUSED] * len(refused)
    assert 29 <= len(refused) <= SITE_LIMIT
    assert all(r.status in (200, 403, 429) for r in replies)
    assert await state_of(ctx, sent) == ("redeemed", 0)


@pytest.mark.asyncio
async def test_fifty_concurrent_with_the_same_id_all_get_the_one_redemption(ctx: Ctx) -> None:
    """As documented: one redeems, the others are repeats of it and get the same answer."""
    sent = await authorized_transfer(ctx)
    proof, rid = await proof_of(sent), new_id()
    replies = await asyncio.gather(*(redeem(ctx, sent, proof, rid) for _ in range(50)))
    # Past the site's limit, attempts under way count as failures until they are answered:
    # those told to wait a moment are answered alike once they retry.
    assert {r.status for r in replies} <= {200, 429}
    replies = [r if r.status == 200 else await redeem(ctx, sent, proof, rid) for r in replies]
    assert [r.status for r in replies] == [200] * 50
    assert len({json.dumps(r.body, sort_keys=True) for r in replies}) == 1
    results = sorted(result for _, result in await attempts(ctx, sent.transfer_id))
    assert results == ["redeemed"] + ["repeated"] * 49


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [b64(bytes(31)), b64(bytes(33)), "not base64!", 5, None])
async def test_a_malformed_redemption_id_is_refused_and_counts_nothing(
    ctx: Ctx, value: object
) -> None:
    sent = await authorized_transfer(ctx)
    body = {"locator": sent.locator, "proof": b64(await proof_of(sent)), "redemption_id": value}
    r = await ctx.call("POST", "/api/v1/redemptions", cred=ctx.relay.receiver_credential, json=body)
    assert (r.status, r.body["type"]) == (400, PROBLEM + "bad-request")
    assert await state_of(ctx, sent) == ("authorized", 0)
