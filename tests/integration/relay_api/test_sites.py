"""The sites directory, site credentials, and what each site's role lets it reach."""

from __future__ import annotations

from typing import Any

import pytest
from relay_harness import RECEIVER, SENDER

from relay import audit
from relay.sites import add_site
from relay.storage.sqlite import audit_chain_intact
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    assert_no_secret,
    audit_since,
    b64,
    code_proof,
    create_transfer,
    holdings,
    locks_body,
    put_record,
    redeem,
    salt,
    state_of,
    status,
    upload,
)
from transfer_codes.tokens import new_token, new_transfer_id


@pytest.mark.asyncio
async def test_directory_lists_trauma_centers_only(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/api/v1/sites", cred=ctx.er)
    assert r.status == 200
    assert [s["name"] for s in r.body["sites"]] == [RECEIVER]
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json={"recipient": SENDER})
    assert (r.status, r.code) == (404, "unknown-site")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-known-credential"],
)
async def test_missing_or_wrong_credential_is_401(ctx: Ctx, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    tid = new_transfer_id()
    for method, path, body in [
        ("GET", "/api/v1/sites", None),
        ("POST", "/api/v1/transfers", {"recipient": RECEIVER}),
        ("GET", f"/api/v1/transfers/{tid}", None),
        ("POST", "/api/v1/redemptions/salt", {"locator": 1}),
        ("POST", "/api/v1/redemptions", {"locator": 1, "proof": b64(bytes(32))}),
    ]:
        r = await ctx.call(method, path, json=body, headers=headers)
        assert (r.status, r.code) == (401, "not-authenticated"), (method, path)
    assert ctx.rows("SELECT count(*) FROM transfers") == [(0,)]


@pytest.mark.asyncio
async def test_refused_site_credentials_are_audited_without_the_credential(ctx: Ctx) -> None:
    guessed = "x" * 43
    count = len(await ctx.audit_records())
    for authorization, why in [
        (f"Bearer {guessed}", "unknown"),
        (f"Bearer {ctx.er}x", "unknown"),  # one character off a real credential
        ("Basic dXNlcjpwYXNz", "missing"),
        (None, "missing"),
    ]:
        headers = {} if authorization is None else {"Authorization": authorization}
        r = await ctx.call("GET", f"/api/v1/transfers/{new_transfer_id()}", headers=headers)
        assert (r.status, r.code) == (401, "not-authenticated")
        ((event, action, outcome, actor, detail),) = await audit_since(ctx, count)
        assert (event, action, outcome, actor) == (
            audit.USER_AUTHENTICATION,
            "site-authentication",
            "failure",
            "unknown",
        )
        assert detail == {
            "credential": why,
            "method": "GET",
            "route": "/api/v1/transfers/{transfer_id}",
        }
        count += 1
    records = await ctx.audit_records()
    assert {r["remote"] for r in records[-4:]} == {"127.0.0.1"}
    assert {r["transfer_id"] for r in records[-4:]} == {None}
    assert_no_secret(records, guessed, ctx.er, "dXNlcjpwYXNz")
    assert audit_chain_intact(records)


@pytest.mark.asyncio
async def test_a_receiving_site_cannot_create_or_upload(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    tid = sent.transfer_id
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/transfers", {"json": {"recipient": RECEIVER}}),
        ("PUT", f"/api/v1/transfers/{tid}/locks", {"json": {}}),
        ("POST", f"/api/v1/transfers/{tid}/reissue", {"json": {}}),
        ("POST", f"/api/v1/transfers/{tid}/revoke", {}),
        ("POST", f"/api/v1/transfers/{tid}/break-glass", {"json": {}}),
        (
            "PATCH",
            f"/api/v1/transfers/{tid}/objects/0",
            {"data": b"x", "headers": {"Upload-Offset": "0"}},
        ),
        (
            "POST",
            f"/api/v1/transfers/{tid}/objects/0/complete",
            {"json": {"size": 1, "sha256": "0"}},
        ),
        ("PUT", f"/api/v1/transfers/{tid}/manifest/0", {"data": b"x"}),
    ]
    for method, path, kwargs in attempts:
        r = await ctx.call(method, path, cred=ctx.tc, **kwargs)
        assert (r.status, r.code) == (403, "not-permitted"), (method, path)
    assert await holdings(ctx, sent) == {
        "objects": [],
        "manifest_records": 0,
        "manifest_closed": False,
    }
    assert await state_of(ctx, sent) == ("authorized", 0)
    assert ctx.rows("SELECT count(*) FROM transfers") == [(1,)]


@pytest.mark.asyncio
async def test_a_sending_site_cannot_redeem(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    proof = await code_proof(ctx, sent.code)
    r = await redeem(ctx, sent.locator, proof, cred=ctx.er)
    assert (r.status, r.code) == (403, "not-permitted")
    r = await ctx.call(
        "POST", "/api/v1/redemptions/salt", cred=ctx.er, json={"locator": sent.locator}
    )
    assert (r.status, r.code) == (403, "not-permitted")
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/receipt",
        cred=ctx.er,
        json={"instances": 1, "bytes": 1, "destination": "pacs"},
    )
    assert (r.status, r.code) == (403, "not-permitted")
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/objects/0", cred=ctx.er)
    assert (r.status, r.code) == (403, "not-permitted")
    assert await state_of(ctx, sent) == ("authorized", 0)


@pytest.mark.asyncio
async def test_a_site_cannot_read_another_sites_transfer(ctx: Ctx) -> None:
    other_er = (await add_site(ctx.relay.data_dir, "other-er", "sending", None)).credential
    other_tc = (await add_site(ctx.relay.data_dir, "other-trauma", "receiving", None)).credential
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"sealed study bytes")
    assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
    tid = sent.transfer_id
    nowhere = new_transfer_id()

    as_sender: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/transfers/{}", {}),
        ("GET", "/api/v1/transfers/{}/objects", {}),
        ("GET", "/api/v1/transfers/{}/manifest", {}),
        (
            "PATCH",
            "/api/v1/transfers/{}/objects/0",
            {"data": b"x", "headers": {"Upload-Offset": "0"}},
        ),
        ("POST", "/api/v1/transfers/{}/objects/0/complete", {"json": {"size": 1, "sha256": "0"}}),
        ("PUT", "/api/v1/transfers/{}/manifest/1", {"data": b"x"}),
        ("POST", "/api/v1/transfers/{}/revoke", {}),
        ("POST", "/api/v1/transfers/{}/reissue", {"json": await locks_body(sent)}),
        ("POST", "/api/v1/transfers/{}/break-glass", {"json": {"sealed_reason": b64(bytes(40))}}),
        (
            "PUT",
            "/api/v1/transfers/{}/locks",
            {"json": {**await locks_body(sent), "authorization_token": new_token()}},
        ),
    ]
    as_receiver: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/transfers/{}", {}),
        ("GET", "/api/v1/transfers/{}/objects", {}),
        ("GET", "/api/v1/transfers/{}/objects/0", {}),
        ("GET", "/api/v1/transfers/{}/manifest", {}),
        (
            "POST",
            "/api/v1/transfers/{}/receipt",
            {"json": {"instances": 1, "bytes": 1, "destination": "pacs"}},
        ),
    ]
    # the intended receiver redeems first, so the refusals below are about the site alone
    r = await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))
    assert r.status == 200
    for cred, attempts in ((other_er, as_sender), (other_tc, as_receiver)):
        for method, template, kwargs in attempts:
            r = await ctx.call(method, template.format(tid), cred=cred, **kwargs)
            missing = await ctx.call(method, template.format(nowhere), cred=cred, **kwargs)
            assert (r.status, r.code) == (404, "not-found"), (method, template)
            assert r.problem == missing.problem  # indistinguishable from no transfer at all

    # the other trauma center's code space is its own: the locator means nothing to it
    assert sent.code_lock is not None
    assert await salt(ctx, sent.locator, other_tc) != sent.code_lock.salt
    proof = await code_proof(ctx, sent.code)
    assert (await redeem(ctx, sent.locator, proof, cred=other_tc)).problem == REFUSED

    st = await status(ctx, sent)
    assert (st.body["state"], st.body["objects_complete"]) == ("redeemed", 1)
    assert (await holdings(ctx, sent))["manifest_records"] == 1
