"""Break-glass: the sending site authorizes without the patient, sealed reason and flagged."""

from __future__ import annotations

import json

import pytest

from relay import audit
from relay_api.plumbing import (
    PROBLEM,
    Ctx,
    _in_pieces,
    b64,
    code_proof,
    create_transfer,
    nothing_changes,
    redeem,
    status,
)
from transfer_codes.notes import seal_note


@pytest.mark.asyncio
async def test_break_glass_authorizes_and_is_flagged(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    sealed = seal_note(
        sent.data_key, sent.transfer_id, "break-glass", {"reason": "unconscious", "clinician": "x"}
    )
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/break-glass",
        cred=ctx.er,
        json={"sealed_reason": b64(sealed)},
    )
    assert (r.status, r.body["state"], r.body["break_glass"]) == (200, "authorized", True)
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert (r.status, r.body["break_glass"]) == (200, True)
    assert (await status(ctx, sent)).body["break_glass"] is True
    alerts = [
        r["action"]
        for r in await ctx.audit_records()
        if r["event_id"] == audit.SECURITY_ALERT and r["transfer_id"] == sent.transfer_id
    ]
    assert alerts == ["break-glass-authorization"]


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ["patient", "family"])
async def test_break_glass_after_the_patient_authorized_is_refused(ctx: Ctx, role: str) -> None:
    sent = await create_transfer(ctx, authorize=False)
    r = await ctx.call(
        "POST", "/api/v1/authorizations", json={"token": sent.token, "authorizer_role": role}
    )
    assert r.status == 200
    sealed = seal_note(sent.data_key, sent.transfer_id, "break-glass", {"reason": "unconscious"})
    with nothing_changes(ctx):
        r = await ctx.call(
            "POST",
            f"/api/v1/transfers/{sent.transfer_id}/break-glass",
            cred=ctx.er,
            json={"sealed_reason": b64(sealed)},
        )
    assert r.problem == (
        409,
        PROBLEM + "invalid-state",
        f"This transfer is already authorized by the {role}; break-glass is not needed.",
    )
    st = await status(ctx, sent)
    assert (st.body["authorized_by"], st.body["break_glass"]) == (role, False)
    assert "break-glass-authorization" not in [r["action"] for r in await ctx.audit_records()]


@pytest.mark.asyncio
async def test_break_glass_twice_is_harmless(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    for _ in range(2):
        sealed = seal_note(sent.data_key, sent.transfer_id, "break-glass", {"reason": "coma"})
        r = await ctx.call(
            "POST",
            f"/api/v1/transfers/{sent.transfer_id}/break-glass",
            cred=ctx.er,
            json={"sealed_reason": b64(sealed)},
        )
        assert (r.status, r.body["state"], r.body["break_glass"]) == (200, "authorized", True)
    st = await status(ctx, sent)
    assert (st.body["authorized_by"], st.body["break_glass"]) == ("break_glass", True)


@pytest.mark.asyncio
async def test_a_json_body_arriving_in_pieces_is_read_whole(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    sealed = seal_note(sent.data_key, sent.transfer_id, "break-glass", {"reason": "r" * 5000})
    body = json.dumps({"sealed_reason": b64(sealed)}).encode()
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/break-glass",
        cred=ctx.er,
        data=_in_pieces(body, 3),
        headers={"Content-Type": "application/json"},
    )
    assert (r.status, r.body["state"]) == (200, "authorized"), r
