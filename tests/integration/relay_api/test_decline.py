"""Declining on the phone (`POST /api/v1/phone/decline`) and who revoked: the refusal is a
revocation by the patient or family, audited, the code dies at once, and the sender's status
says they declined (`revoked_by`, `declined`)."""

from __future__ import annotations

from typing import Any

import pytest

from relay import audit
from relay.desk.documents import DECLINED
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import (
    Ctx,
    assert_no_secret,
    assert_unwraps,
    audit_since,
    code_proof,
    create_transfer,
    locks_body,
    redeem,
    redeem_capability,
    status,
)
from transfer_codes.tokens import new_token

PHONE = {"Cookie": "tr_csrf=abc", "X-CSRF-Token": "abc"}  # what the page sends back
DECLINE = "/api/v1/phone/decline"


def _revocation(document: dict[str, Any]) -> tuple[Any, ...]:
    return document["state"], document["revoked_by"], document["declined"]


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ["patient", "family"])
async def test_declining_revokes_for_good_and_the_sender_sees_it(ctx: Ctx, role: str) -> None:
    sent = await create_transfer(ctx, authorize=False)
    proof = await code_proof(ctx, sent.code)
    count = len(await ctx.audit_records())
    ctx.clock.advance(90)

    r = await ctx.call("POST", DECLINE, json={"token": sent.token, "role": role}, headers=PHONE)

    assert r.status == 200, r
    assert _revocation(r.body) == ("revoked", role, True)
    assert (r.body["revoked_at"], r.body["can_revoke"]) == (ctx.clock.now, False)
    assert r.body["explanation"] == DECLINED
    assert r.body["code"] is None
    # Audited once, as the patient or family, with the reason; the token is nowhere in it.
    assert await audit_since(ctx, count) == [
        (
            audit.SECURITY_ALERT,
            "phone-revocation",
            "success",
            role,
            {"state": "awaiting_authorization", "reason": "declined"},
        )
    ]
    records = await ctx.audit_records()
    assert_no_secret(records, sent.token)
    assert audit_chain_intact(records)
    # The code dies at once: its keys are gone, and every way in is refused.
    assert ctx.rows("SELECT count(*) FROM key_locks WHERE transfer_id = ?", sent.transfer_id) == [
        (0,)
    ]
    # The right code and QR are told the patient or family cancelled; nothing is unlocked.
    for refused in (
        await redeem(ctx, sent.locator, proof),
        await redeem_capability(ctx, sent.capability),
    ):
        assert (refused.status, refused.code) == (410, "revoked")
        assert "cancelled by the patient or family" in refused.body["detail"]
        assert "wrapped_key" not in refused.body
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
    assert (r.status, r.code) == (410, "revoked")
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/reissue",
        cred=ctx.er,
        json=await locks_body(sent),
    )
    assert (r.status, r.code) == (410, "revoked")  # nor can a new code bring it back
    # The ER sees that the patient or family declined, and when.
    sender_view = (await status(ctx, sent)).body
    assert _revocation(sender_view) == ("revoked", role, True)
    assert sender_view["revoked_at"] == ctx.clock.now
    assert sender_view["authorized_at"] is None
    # And so does the phone, opened again.
    r = await ctx.call("POST", "/api/v1/phone/status", json={"token": sent.token}, headers=PHONE)
    assert _revocation(r.body) == ("revoked", role, True)


@pytest.mark.asyncio
async def test_declining_after_authorization_is_refused_audited_and_changes_nothing(
    ctx: Ctx,
) -> None:
    sent = await create_transfer(ctx)  # the patient authorized from the link
    count = len(await ctx.audit_records())
    r = await ctx.call("POST", DECLINE, json={"token": sent.token, "role": "family"}, headers=PHONE)
    assert (r.status, r.code) == (409, "invalid-state")
    assert "can still be cancelled" in r.problem[2]
    assert await audit_since(ctx, count) == [
        (
            audit.SECURITY_ALERT,
            "phone-revocation",
            "failure",
            "family",
            {"state": "authorized", "reason": "declined"},
        )
    ]
    assert _revocation((await status(ctx, sent)).body) == ("authorized", None, False)
    assert_unwraps(
        await redeem(ctx, sent.locator, await code_proof(ctx, sent.code)), sent, sent.code
    )


@pytest.mark.asyncio
async def test_a_decline_must_say_who_and_pass_the_csrf_check(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    for body in ({"token": sent.token}, {"token": sent.token, "role": "sending_site"}):
        r = await ctx.call("POST", DECLINE, json=body, headers=PHONE)
        assert (r.status, r.code) == (400, "bad-request"), body
        assert "'role' must be 'patient' or 'family'." in r.problem[2]
    r = await ctx.call("POST", DECLINE, json={"token": sent.token, "role": "family"})
    assert (r.status, r.code) == (403, "csrf")
    assert _revocation((await status(ctx, sent)).body) == ("awaiting_authorization", None, False)

    count = len(await ctx.audit_records())
    r = await ctx.call(
        "POST", DECLINE, json={"token": new_token(), "role": "family"}, headers=PHONE
    )
    assert (r.status, r.code) == (404, "not-found")
    assert await audit_since(ctx, count) == [
        (
            audit.USER_AUTHENTICATION,
            "phone-link-refused",
            "failure",
            "unknown",
            {"attempted": "decline"},
        )
    ]


@pytest.mark.asyncio
async def test_the_status_says_who_revoked(ctx: Ctx) -> None:
    by_sender = await create_transfer(ctx)
    r = await ctx.call("POST", f"/api/v1/transfers/{by_sender.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200, r
    assert _revocation((await status(ctx, by_sender)).body) == ("revoked", "sending_site", False)

    # A cancel from the phone after the patient authorized from it: the patient cancelled.
    by_patient = await create_transfer(ctx)
    r = await ctx.call(
        "POST", "/api/v1/phone/revoke", json={"token": by_patient.token}, headers=PHONE
    )
    assert _revocation(r.body) == ("revoked", "patient", False)
    assert _revocation((await status(ctx, by_patient)).body) == ("revoked", "patient", False)

    # After break-glass nobody authorized from the link, so the phone says who cancels.
    by_family = await create_transfer(ctx, authorize=False)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{by_family.transfer_id}/break-glass",
        cred=ctx.er,
        json={"sealed_reason": "A" * 40},
    )
    assert r.status == 200, r
    r = await ctx.call(
        "POST",
        "/api/v1/phone/revoke",
        json={"token": by_family.token, "role": "family"},
        headers=PHONE,
    )
    assert _revocation(r.body) == ("revoked", "family", False)
    assert _revocation((await status(ctx, by_family)).body) == ("revoked", "family", False)

    # A transfer nobody revoked says so too.
    live = await create_transfer(ctx)
    assert _revocation((await status(ctx, live)).body) == ("authorized", None, False)
