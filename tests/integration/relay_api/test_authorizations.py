"""The patient's authorization (`POST /api/v1/authorizations`) and the phone links."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from relay import audit, errors
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import (
    Ctx,
    Sent,
    assert_no_secret,
    assert_unwraps,
    audit_since,
    code_proof,
    create_transfer,
    redeem,
    state_of,
    status,
)
from transfer_codes.tokens import new_token


@pytest.mark.asyncio
async def test_right_code_before_authorization_does_not_consume_it(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    proof = await code_proof(ctx, sent.code)
    for _ in range(2):
        r = await redeem(ctx, sent.locator, proof)
        assert (r.status, r.code) == (409, "awaiting-authorization")
        assert r.body["detail"] == errors.AwaitingAuthorization().detail
    assert await state_of(ctx, sent) == ("awaiting_authorization", 0)
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
    assert (r.status, r.body["state"]) == (200, "authorized")
    r = await redeem(ctx, sent.locator, proof)
    assert_unwraps(r, sent, sent.code)
    assert r.body["break_glass"] is False


@pytest.mark.asyncio
async def test_unknown_authorization_token_is_refused(ctx: Ctx) -> None:
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": new_token()})
    assert (r.status, r.code) == (404, "not-found")


@pytest.mark.asyncio
async def test_unknown_phone_links_are_audited_without_the_token(ctx: Ctx) -> None:
    tokens = [new_token() for _ in range(3)]
    browser = {"Cookie": "tr_csrf=abc", "X-CSRF-Token": "abc"}
    count = len(await ctx.audit_records())
    for path, token, attempted in [
        ("/api/v1/phone/status", tokens[0], "status"),
        ("/api/v1/phone/revoke", tokens[1], "revoke"),
        ("/api/v1/authorizations", tokens[2], "authorize"),
    ]:
        r = await ctx.call("POST", path, json={"token": token}, headers=browser)
        assert (r.status, r.code) == (404, "not-found"), path
        assert await audit_since(ctx, count) == [
            (
                audit.USER_AUTHENTICATION,
                "phone-link-refused",
                "failure",
                "unknown",
                {"attempted": attempted},
            )
        ]
        count += 1
    records = await ctx.audit_records()
    assert {r["remote"] for r in records[-3:]} == {"127.0.0.1"}
    assert_no_secret(records, *tokens)
    assert audit_chain_intact(records)


async def _revoked(ctx: Ctx, sent: Sent) -> None:
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200, r


async def _expired(ctx: Ctx, sent: Sent) -> None:
    ctx.clock.now = sent.expires_at  # the sweeper has not run: refused all the same


async def _redeemed(ctx: Ctx, sent: Sent) -> None:
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
    assert r.status == 200, r
    assert_unwraps(
        await redeem(ctx, sent.locator, await code_proof(ctx, sent.code)), sent, sent.code
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("end", "answer", "state"),
    [
        (_revoked, (410, "revoked"), "revoked"),
        (_expired, (410, "expired"), "expired"),
        (_redeemed, (409, "invalid-state"), "redeemed"),
    ],
    ids=["revoked", "expired", "redeemed"],
)
async def test_a_refused_authorization_is_audited_and_changes_nothing(
    ctx: Ctx,
    end: Callable[[Ctx, Sent], Awaitable[None]],
    answer: tuple[int, str],
    state: str,
) -> None:
    sent = await create_transfer(ctx, authorize=False)
    await end(ctx, sent)
    before = (await status(ctx, sent)).body
    count = len(await ctx.audit_records())
    r = await ctx.call(
        "POST", "/api/v1/authorizations", json={"token": sent.token, "authorizer_role": "family"}
    )
    assert (r.status, r.code) == answer
    assert await audit_since(ctx, count) == [
        (
            audit.APPLICATION_ACTIVITY,
            "patient-authorization",
            "failure",
            "family",
            {"state": state},
        )
    ]
    assert (await status(ctx, sent)).body == before
    records = await ctx.audit_records()
    assert_no_secret(records, sent.token)
    assert audit_chain_intact(records)
