"""A site's life after `site add`: its credential rotated (the old one refused at once, or after
a grace), the site disabled (refused at once, no longer a destination; its open transfers kept
or revoked), enabled again. Every change is in the audit trail, without the credential."""

from __future__ import annotations

import json

import pytest
from relay_harness import RECEIVER, SENDER

from relay import errors
from relay.sites import disable_site, enable_site, list_sites, rotate_site
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import Ctx, assert_no_secret, create_transfer


def _state(ctx: Ctx, transfer_id: str) -> tuple[str, str | None]:
    ((state, revoked_by),) = ctx.rows(
        "SELECT state, revoked_by FROM transfers WHERE id = ?", transfer_id
    )
    return state, revoked_by


async def _sites(ctx: Ctx, credential: str) -> tuple[int, str]:
    r = await ctx.call("GET", "/api/v1/sites", cred=credential)
    return r.status, (r.code if r.status >= 400 else "ok")


@pytest.mark.asyncio
async def test_rotation_without_grace_refuses_the_old_credential_at_once(ctx: Ctx) -> None:
    old = ctx.er
    new = await rotate_site(ctx.relay.data_dir, SENDER, clock=ctx.clock)
    assert new.credential != old
    assert await _sites(ctx, old) == (401, "not-authenticated")
    assert await _sites(ctx, new.credential) == (200, "ok")
    records = await ctx.audit_records()
    assert [(r["action"], r["outcome"]) for r in records[-3:]] == [
        ("site-credential-rotated", "success"),
        ("site-authentication", "failure"),  # the old credential, refused
        ("site-authentication", "success"),  # the new one, accepted
    ]
    assert_no_secret(records, old, new.credential)
    assert audit_chain_intact(records)


@pytest.mark.asyncio
async def test_rotation_with_grace_keeps_the_old_credential_until_then(ctx: Ctx) -> None:
    old = ctx.er
    new = await rotate_site(ctx.relay.data_dir, SENDER, 3600, clock=ctx.clock)
    assert await _sites(ctx, old) == (200, "ok")
    assert await _sites(ctx, new.credential) == (200, "ok")
    ctx.clock.advance(3599)
    assert await _sites(ctx, old) == (200, "ok")
    ctx.clock.advance(2)
    assert await _sites(ctx, old) == (401, "not-authenticated")
    assert await _sites(ctx, new.credential) == (200, "ok")
    (record,) = [r for r in await list_sites(ctx.relay.data_dir) if r.site.name == SENDER]
    assert record.previous_until == pytest.approx(ctx.clock.now - 3601 + 3600)


@pytest.mark.asyncio
async def test_a_grace_out_of_bounds_is_refused(ctx: Ctx) -> None:
    with pytest.raises(errors.BadRequest, match="grace"):
        await rotate_site(ctx.relay.data_dir, SENDER, -1, clock=ctx.clock)
    with pytest.raises(errors.UnknownSiteName, match="site list"):
        await rotate_site(ctx.relay.data_dir, "no-such-site", clock=ctx.clock)
    assert await _sites(ctx, ctx.er) == (200, "ok")


@pytest.mark.asyncio
async def test_a_disabled_sender_is_refused_at_once_and_its_transfer_kept(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    done = await disable_site(ctx.relay.data_dir, SENDER, revoke_open=False, clock=ctx.clock)
    assert (done.revoked, done.kept) == ([], 1)
    assert await _sites(ctx, ctx.er) == (403, "site-disabled")
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json={"recipient": RECEIVER})
    assert (r.status, r.code) == (403, "site-disabled")
    assert r.body["detail"] == "This site is disabled on this relay. Ask the relay's operator."
    # the trauma center can still see (and redeem) what was already on its way
    assert _state(ctx, sent.transfer_id) == ("authorized", None)
    records = await ctx.audit_records()
    assert [r["action"] for r in records[-3:]] == ["site-disabled"] + ["site-authentication"] * 2
    assert {json.loads(r["detail"])["credential"] for r in records[-2:]} == {"disabled"}
    await enable_site(ctx.relay.data_dir, SENDER, clock=ctx.clock)
    assert await _sites(ctx, ctx.er) == (200, "ok")


@pytest.mark.asyncio
async def test_disabling_with_revoke_open_revokes_what_is_not_redeemed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    done = await disable_site(ctx.relay.data_dir, SENDER, revoke_open=True, clock=ctx.clock)
    assert (done.revoked, done.kept) == ([sent.transfer_id], 0)
    assert _state(ctx, sent.transfer_id) == ("revoked", None)  # by nobody on the transfer
    assert ctx.rows("SELECT count(*) FROM key_locks WHERE transfer_id = ?", sent.transfer_id) == [
        (0,)
    ]
    actions = [(r["action"], r["actor"]) for r in (await ctx.audit_records())[-2:]]
    assert actions == [("transfer-revoked", "operator"), ("site-disabled", "operator")]


@pytest.mark.asyncio
async def test_a_disabled_trauma_center_is_no_destination(ctx: Ctx) -> None:
    await disable_site(ctx.relay.data_dir, RECEIVER, revoke_open=False, clock=ctx.clock)
    r = await ctx.call("GET", "/api/v1/sites", cred=ctx.er)
    assert r.body["sites"] == []
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json={"recipient": RECEIVER})
    assert (r.status, r.code) == (404, "unknown-site")
    listed = {r.site.name: r.site.disabled_at for r in await list_sites(ctx.relay.data_dir)}
    assert listed == {SENDER: None, RECEIVER: ctx.clock.now}
