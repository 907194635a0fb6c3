"""The relay's HTTP API, in-process on port 0, driven as the sites and the patient drive it.

Key locks are real (`transfer_codes.keys`); the relay only ever sees proofs, so a "wrong code" is
any proof that does not match the stored verifier. Time is a `FakeClock` the tests move by hand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import itertools
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from openapi_spec_validator import validate
from relay_harness import RECEIVER, SENDER, FakeClock, Relay, running_relay
from yarl import URL

from relay import audit, errors, sweeper
from relay.api.uploads import PAGE_BYTES
from relay.appkeys import CONFIG, MANIFEST_EVENTS, METADATA, OBJECTS, UPLOAD_LOCKS
from relay.client import RelayClient
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from relay.sites import add_site
from relay.storage.sqlite import SqliteMetadata, verify_audit_chain
from sending_site.journal import TransferJournal
from sending_site.push import install_locks
from transfer_codes.capability import Capability
from transfer_codes.codes import LOCATOR_LIMIT, RedemptionCode
from transfer_codes.keys import (
    KeyLock,
    lock_with_capability,
    lock_with_code,
    new_data_key,
    stretch_capability,
    stretch_code,
    unwrap,
)
from transfer_codes.manifest import MAX_RECORD_SIZE
from transfer_codes.notes import seal_note
from transfer_codes.sealed import seal_object
from transfer_codes.tokens import new_token, new_transfer_id

PROBLEM = "urn:trauma-relay:problem:"
HOURS = 3600.0
REFUSED = (403, PROBLEM + "code-not-accepted", errors.CodeNotAccepted().detail)


# -- plumbing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def problem(self) -> tuple[int, str, str]:
        """(status, type, detail) of a problem document; fails if this is not one."""
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), self
        assert self.body["status"] == self.status
        return self.status, self.body["type"], self.body["detail"]

    @property
    def code(self) -> str:
        return str(self.problem[1]).removeprefix(PROBLEM)


@dataclass
class Ctx:
    relay: Relay
    clock: FakeClock
    http: aiohttp.ClientSession

    @property
    def er(self) -> str:
        return self.relay.sender_credential

    @property
    def tc(self) -> str:
        return self.relay.receiver_credential

    async def call(
        self,
        method: str,
        path: str | URL,
        *,
        cred: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if cred is not None:
            all_headers["Authorization"] = f"Bearer {cred}"
        url = path if isinstance(path, URL) else self.relay.url + path
        async with self.http.request(
            method, url, json=json, data=data, headers=all_headers, params=params
        ) as response:
            raw = await response.read()
            body: Any = raw
            if response.content_type in ("application/json", "application/problem+json"):
                body = await response.json(content_type=None)
            return Reply(response.status, body, dict(response.headers))

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.relay.data_dir / "relay.sqlite3")

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.db()) as db:
            return list(db.execute(sql, args).fetchall())

    async def audit_records(self) -> list[dict[str, Any]]:
        store = await SqliteMetadata.open(self.relay.data_dir / "relay.sqlite3")
        try:
            return await store.audit_records()
        finally:
            await store.close()


@pytest_asyncio.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http)


@dataclass
class Sent:
    """A transfer as the sending site knows it (it alone holds the data key)."""

    transfer_id: str
    locator: int
    expires_at: float
    data_key: bytes
    code: RedemptionCode
    capability: Capability
    token: str
    code_lock: KeyLock | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def locks_body(sent: Sent) -> dict[str, Any]:
    code_lock = await asyncio.to_thread(lock_with_code, sent.data_key, sent.transfer_id, sent.code)
    sent.code_lock = code_lock
    return {
        "code": code_lock.to_json(),
        "capability": lock_with_capability(
            sent.data_key, sent.transfer_id, sent.capability
        ).to_json(),
    }


async def create_transfer(
    ctx: Ctx, *, install: bool = True, authorize: bool = True, expires_in: int | None = None
) -> Sent:
    body: dict[str, Any] = {"recipient": RECEIVER}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json=body)
    assert r.status == 201, r
    tid = r.body["transfer_id"]
    sent = Sent(
        transfer_id=tid,
        locator=r.body["locator"],
        expires_at=r.body["expires_at"],
        data_key=new_data_key(),
        code=RedemptionCode.generate(r.body["locator"]),
        capability=Capability.generate(tid),
        token=new_token(),
    )
    if install:
        locks = await locks_body(sent)
        r = await ctx.call(
            "PUT",
            f"/api/v1/transfers/{tid}/locks",
            cred=ctx.er,
            json={**locks, "authorization_token": sent.token},
        )
        assert (r.status, r.body["state"]) == (200, "awaiting_authorization"), r
    if authorize:
        r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
        assert (r.status, r.body["state"]) == (200, "authorized"), r
    return sent


async def salt(ctx: Ctx, locator: int, cred: str | None = None) -> bytes:
    r = await ctx.call(
        "POST", "/api/v1/redemptions/salt", cred=cred or ctx.tc, json={"locator": locator}
    )
    assert r.status == 200, r
    return base64.b64decode(r.body["salt"])


async def code_proof(ctx: Ctx, code: RedemptionCode) -> bytes:
    """What a receiving site sends for a typed code: scrypt with the salt the relay gives."""
    unlock = await asyncio.to_thread(stretch_code, code, await salt(ctx, code.locator))
    return unlock.proof


async def redeem(ctx: Ctx, locator: int, proof: bytes, cred: str | None = None) -> Reply:
    return await ctx.call(
        "POST",
        "/api/v1/redemptions",
        cred=cred or ctx.tc,
        json={"locator": locator, "proof": b64(proof)},
    )


async def redeem_capability(ctx: Ctx, capability: Capability) -> Reply:
    proof = stretch_capability(capability).proof
    return await ctx.call(
        "POST",
        "/api/v1/redemptions",
        cred=ctx.tc,
        json={"transfer_id": capability.transfer_id, "proof": b64(proof)},
    )


def wrong_proof() -> bytes:
    return secrets.token_bytes(32)


async def status(ctx: Ctx, sent: Sent, cred: str | None = None) -> Reply:
    return await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}", cred=cred or ctx.er)


async def state_of(ctx: Ctx, sent: Sent) -> tuple[str, int]:
    r = await status(ctx, sent)
    assert r.status == 200, r
    return r.body["state"], r.body["failed_attempts"]


async def upload(ctx: Ctx, sent: Sent, index: int, plaintext: bytes) -> bytes:
    """Seal, upload and complete one object; returns the sealed bytes."""
    sealed = seal_object(sent.data_key, sent.transfer_id, index, plaintext)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/{index}"
    r = await ctx.call("PATCH", base, cred=ctx.er, data=sealed, headers={"Upload-Offset": "0"})
    assert (r.status, r.body["offset"]) == (200, len(sealed)), r
    r = await ctx.call(
        "POST",
        base + "/complete",
        cred=ctx.er,
        json={"size": len(sealed), "sha256": hashlib.sha256(sealed).hexdigest()},
    )
    assert r.status == 200, r
    return sealed


async def put_record(ctx: Ctx, sent: Sent, seq: int, record: bytes, *, final: bool) -> Reply:
    return await ctx.call(
        "PUT",
        f"/api/v1/transfers/{sent.transfer_id}/manifest/{seq}",
        cred=ctx.er,
        data=record,
        headers={"Manifest-Final": "1" if final else "0"},
    )


async def holdings(ctx: Ctx, sent: Sent) -> dict[str, Any]:
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/objects", cred=ctx.er)
    assert r.status == 200, r
    return dict(r.body)


async def sweep(ctx: Ctx) -> int:
    app = ctx.relay.app
    assert app is not None
    return await sweeper.sweep_once(app[CONFIG], app[METADATA], app[OBJECTS])


def unused_locator(*used: Sent) -> int:
    return next(n for n in range(LOCATOR_LIMIT) if n not in {s.locator for s in used})


def assert_unwraps(reply: Reply, sent: Sent, unlock_proof_source: RedemptionCode) -> None:
    assert reply.status == 200, reply
    assert sent.code_lock is not None
    unlock = stretch_code(unlock_proof_source, sent.code_lock.salt)
    key = unwrap(base64.b64decode(reply.body["wrapped_key"]), unlock, sent.transfer_id)
    assert key == sent.data_key


# -- one-time redemption ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifty_concurrent_redemptions_exactly_one_succeeds(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    proof = await code_proof(ctx, sent.code)
    replies = await asyncio.gather(*(redeem(ctx, sent.locator, proof) for _ in range(50)))
    winners = [r for r in replies if r.status == 200]
    assert len(winners) == 1
    assert_unwraps(winners[0], sent, sent.code)
    assert [r.problem for r in replies if r.status != 200] == [REFUSED] * 49
    # a spent code is not a wrong code: it neither counts nor locks
    assert await state_of(ctx, sent) == ("redeemed", 0)
    attempts = [
        r
        for r in await ctx.audit_records()
        if r["event_id"] == audit.USER_AUTHENTICATION and r["transfer_id"] == sent.transfer_id
    ]
    assert sorted(r["outcome"] for r in attempts) == ["failure"] * 49 + ["success"]


# -- lock-out and re-issue --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ten_wrong_codes_lock_and_reissue_brings_a_new_code(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    right = await code_proof(ctx, sent.code)
    for attempt in range(1, MAX_FAILED_ATTEMPTS + 1):
        r = await redeem(ctx, sent.locator, wrong_proof())
        assert r.problem == REFUSED
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
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, old_code))).problem == REFUSED
    assert (await redeem_capability(ctx, old_capability)).problem == REFUSED
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
        assert (await redeem(ctx, sent.locator, wrong_proof())).problem == REFUSED
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
    assert (await redeem(ctx, sent.locator, old_proof)).problem == REFUSED
    assert (await redeem_capability(ctx, old_capability)).problem == REFUSED
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


# -- the same answer for every refusal --------------------------------------------------------


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
        "wrong code": await redeem(ctx, wrong.locator, wrong_proof()),
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


# -- authorization ----------------------------------------------------------------------------


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
async def test_unknown_authorization_token_is_refused(ctx: Ctx) -> None:
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": new_token()})
    assert (r.status, r.code) == (404, "not-found")


# -- roles ------------------------------------------------------------------------------------


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


@pytest.mark.asyncio
async def test_the_receiver_sees_nothing_before_redemption(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"bytes")
    for path in ("", "/objects", "/objects/0", "/manifest"):
        r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}{path}", cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found"), path


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
async def test_directory_lists_trauma_centers_only(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/api/v1/sites", cred=ctx.er)
    assert r.status == 200
    assert [s["name"] for s in r.body["sites"]] == [RECEIVER]
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json={"recipient": SENDER})
    assert (r.status, r.code) == (404, "unknown-site")


# -- resumable upload -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_patch_at_the_wrong_offset_is_409_with_the_relays_offset(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, bytes(range(256)) * 400)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"

    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[:1000], headers={"Upload-Offset": "0"}
    )
    assert (r.status, r.body["offset"], r.headers["Upload-Offset"]) == (200, 1000, "1000")
    for wrong in ("0", "999", "1001", "5000"):
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=b"junk", headers={"Upload-Offset": wrong}
        )
        assert (r.status, r.code, r.body["offset"]) == (409, "upload-offset-mismatch", 1000)
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": 1000, "complete": False}
    ]
    stored = ctx.relay.data_dir / "objects" / sent.transfer_id / "00000000.sealed"
    assert stored.read_bytes() == sealed[:1000]

    # a fresh object starts at 0, whatever the client believes
    r = await ctx.call(
        "PATCH", base[:-1] + "1", cred=ctx.er, data=b"x", headers={"Upload-Offset": "7"}
    )
    assert (r.status, r.body["offset"]) == (409, 0)

    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[1000:], headers={"Upload-Offset": "1000"}
    )
    assert (r.status, r.body["offset"]) == (200, len(sealed))
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": False}
    ]
    assert stored.read_bytes() == sealed


@pytest.mark.asyncio
async def test_complete_checks_size_and_sha256(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, b"an image" * 1000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    await ctx.call("PATCH", base, cred=ctx.er, data=sealed, headers={"Upload-Offset": "0"})
    right = hashlib.sha256(sealed).hexdigest()

    for size, sha in [(len(sealed), "0" * 64), (len(sealed) - 1, right), (len(sealed) + 1, right)]:
        r = await ctx.call(
            "POST", base + "/complete", cred=ctx.er, json={"size": size, "sha256": sha}
        )
        assert (r.status, r.code) == (422, "integrity")
        assert (await holdings(ctx, sent))["objects"][0]["complete"] is False
        assert (await status(ctx, sent)).body["objects_complete"] == 0

    done = {"size": len(sealed), "sha256": right}
    for _ in range(2):  # completing again with the same contents is fine
        r = await ctx.call("POST", base + "/complete", cred=ctx.er, json=done)
        assert (r.status, r.body) == (200, {"index": 0, "complete": True})
    r = await ctx.call(
        "POST", base + "/complete", cred=ctx.er, json={"size": len(sealed), "sha256": "1" * 64}
    )
    assert (r.status, r.code) == (422, "integrity")
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=b"more", headers={"Upload-Offset": str(len(sealed))}
    )
    assert (r.status, r.code) == (409, "invalid-state")
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True}
    ]

    # and the receiver gets exactly these bytes, whole or from an offset
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call("GET", base, cred=ctx.tc)
    assert (r.status, r.body, r.headers["X-Object-SHA256"]) == (200, sealed, right)
    r = await ctx.call("GET", base, cred=ctx.tc, headers={"Range": "bytes=100-"})
    assert (r.status, r.body) == (206, sealed[100:])


@pytest.mark.asyncio
@pytest.mark.parametrize("split", [None, 1000], ids=["one-patch", "two-patches"])
async def test_the_last_patch_can_complete_the_object(ctx: Ctx, split: int | None) -> None:
    sent = await create_transfer(ctx)
    sealed = seal_object(sent.data_key, sent.transfer_id, 0, b"an image" * 1000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    start = 0
    if split is not None:  # the digest then covers bytes of an earlier PATCH, read back
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=sealed[:split], headers={"Upload-Offset": "0"}
        )
        assert (r.status, r.body["complete"]) == (200, False)
        start = split
    ending = {"Upload-Offset": str(start), "Upload-Length": str(len(sealed))}

    r = await ctx.call(
        "PATCH",
        base,
        cred=ctx.er,
        data=sealed[start:],
        headers={**ending, "Upload-SHA256": "0" * 64},
    )
    assert (r.status, r.code) == (422, "integrity")
    # A refused ending is not acknowledged: the relay still holds only what it held before.
    assert (await holdings(ctx, sent))["objects"] == (
        [] if split is None else [{"index": 0, "offset": split, "complete": False}]
    )

    right = hashlib.sha256(sealed).hexdigest()
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=sealed[start:], headers={**ending, "Upload-SHA256": right}
    )
    assert (r.status, r.body) == (200, {"offset": len(sealed), "complete": True})
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True}
    ]
    r = await ctx.call(
        "PATCH", base, cred=ctx.er, data=b"x", headers={**ending, "Upload-SHA256": "1"}
    )
    assert (r.status, r.code) == (400, "bad-request")


@pytest.mark.asyncio
async def test_complete_before_any_bytes_is_refused(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/objects/3/complete",
        cred=ctx.er,
        json={"size": 0, "sha256": hashlib.sha256(b"").hexdigest()},
    )
    assert (r.status, r.code) == (422, "integrity")
    assert (await holdings(ctx, sent))["objects"] == []


@pytest.mark.asyncio
async def test_manifest_records_in_order_idempotent_and_closed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await put_record(ctx, sent, 1, b"first entry", final=False)
    assert (r.status, r.code) == (400, "bad-request")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await put_record(ctx, sent, 0, b"summary", final=False)
    assert (r.status, r.body) == (200, {"seq": 0, "final": False})
    for different in (b"other summary", b"summary!"):
        r = await put_record(ctx, sent, 0, different, final=False)
        assert (r.status, r.code) == (409, "invalid-state")
    r = await put_record(ctx, sent, 0, b"summary", final=True)
    assert (r.status, r.code) == (409, "invalid-state")
    assert (await put_record(ctx, sent, 2, b"gap", final=False)).status == 400
    assert (await put_record(ctx, sent, 1, b"closing", final=True)).status == 201
    assert (await put_record(ctx, sent, 1, b"closing", final=True)).status == 200
    for seq in (2, 3):
        r = await put_record(ctx, sent, seq, b"late", final=False)
        assert (r.status, r.code) == (409, "invalid-state")
    assert (await put_record(ctx, sent, 2, b"late", final=True)).status == 409

    h = await holdings(ctx, sent)
    assert (h["manifest_records"], h["manifest_closed"]) == (2, True)
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er)
    assert [(x["seq"], x["final"], base64.b64decode(x["record"])) for x in r.body["records"]] == [
        (0, False, b"summary"),
        (1, True, b"closing"),
    ]
    assert r.body["closed"] is True


async def _in_pieces(data: bytes, pieces: int) -> AsyncIterator[bytes]:
    """A request body sent with chunked encoding, in pieces with a pause between them, as a
    slow network delivers it. The pause only makes the split land; no result depends on it."""
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        if start:
            await asyncio.sleep(0.05)
        yield data[start : start + step]


@pytest.mark.asyncio
async def test_a_manifest_record_arriving_in_pieces_is_stored_whole(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    record = secrets.token_bytes(60_000)  # under the 64 KiB readers accept, in 4 pieces
    r = await ctx.call(
        "PUT",
        f"/api/v1/transfers/{sent.transfer_id}/manifest/0",
        cred=ctx.er,
        data=_in_pieces(record, 4),
        headers={"Manifest-Final": "0"},
    )
    assert r.status == 201, r
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er)
    assert base64.b64decode(r.body["records"][0]["record"]) == record
    # and the same bytes again are recognised as the same record
    assert (await put_record(ctx, sent, 0, record, final=False)).status == 200


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


@pytest.mark.asyncio
async def test_objects_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock, max_object_size=4096) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, clock, http)
        sent = await create_transfer(ctx)
        base = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=bytes(3000), headers={"Upload-Offset": "0"}
        )
        assert r.status == 200
        r = await ctx.call(
            "PATCH", base, cred=ctx.er, data=bytes(2000), headers={"Upload-Offset": "3000"}
        )
        assert (r.status, r.code) == (413, "too-large")
        assert (await holdings(ctx, sent))["objects"] == [
            {"index": 0, "offset": 3000, "complete": False}
        ]


# -- expiry -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_expiry_refuses_everything_and_the_sweeper_purges(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    bystander = await create_transfer(ctx, expires_in=100 * 3600)
    sealed = await upload(ctx, sent, 0, b"slice one" * 500)
    await upload(ctx, bystander, 0, b"other study")
    await ctx.call(
        "PATCH",
        f"/api/v1/transfers/{sent.transfer_id}/objects/1",
        cred=ctx.er,
        data=b"partial",
        headers={"Upload-Offset": "0"},
    )
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    proof = await code_proof(ctx, sent.code)
    folder = ctx.relay.data_dir / "objects" / sent.transfer_id
    assert folder.is_dir()

    ctx.clock.now = sent.expires_at  # expiry is at expires_at exactly
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    assert (await redeem_capability(ctx, sent.capability)).problem == REFUSED
    assert (await status(ctx, sent)).body["state"] == "expired"
    base = f"/api/v1/transfers/{sent.transfer_id}"
    refusals = [
        await ctx.call(
            "PATCH", base + "/objects/1", cred=ctx.er, data=b"more", headers={"Upload-Offset": "7"}
        ),
        await ctx.call(
            "PATCH", base + "/objects/2", cred=ctx.er, data=b"new", headers={"Upload-Offset": "0"}
        ),
        await ctx.call(
            "POST",
            base + "/objects/1/complete",
            cred=ctx.er,
            json={"size": 7, "sha256": hashlib.sha256(b"partial").hexdigest()},
        ),
        await put_record(ctx, sent, 1, b"entry", final=False),
        await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token}),
        await ctx.call("POST", base + "/reissue", cred=ctx.er, json=await locks_body(sent)),
        await ctx.call("POST", base + "/revoke", cred=ctx.er),
    ]
    for r in refusals:
        assert_clear_refusal(r)
        assert "expired" in r.problem[2], r
    assert (await holdings(ctx, sent))["objects"] == [
        {"index": 0, "offset": len(sealed), "complete": True},
        {"index": 1, "offset": 7, "complete": False},
    ]

    assert await sweep(ctx) == 1
    assert not folder.exists()
    assert (ctx.relay.data_dir / "objects" / bystander.transfer_id).is_dir()
    assert ctx.rows("SELECT count(*) FROM key_locks WHERE transfer_id = ?", sent.transfer_id) == [
        (0,)
    ]
    assert ctx.rows(
        "SELECT count(*) FROM manifest_records WHERE transfer_id = ?", sent.transfer_id
    ) == [(0,)]
    assert ctx.rows(
        "SELECT authorization_digest, break_glass_sealed FROM transfers WHERE id = ?",
        sent.transfer_id,
    ) == [(None, None)]
    assert ctx.rows(
        "SELECT count(*) FROM key_locks WHERE transfer_id = ?", bystander.transfer_id
    ) == [(2,)]
    deleted = [r for r in await ctx.audit_records() if r["event_id"] == audit.STUDY_DELETED]
    assert [(r["transfer_id"], json.loads(r["detail"])) for r in deleted] == [
        (sent.transfer_id, {"reason": "expired"})
    ]
    assert (await status(ctx, sent)).body["state"] == "expired"
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    # after the purge too, nothing fails half-way: still clear refusals, never a 500
    r = await ctx.call(
        "POST",
        base + "/objects/0/complete",
        cred=ctx.er,
        json={"size": len(sealed), "sha256": hashlib.sha256(sealed).hexdigest()},
    )
    assert r.status == 200 or 400 <= r.status < 500, r
    r = await ctx.call(
        "POST",
        base + "/objects/1/complete",
        cred=ctx.er,
        json={"size": 7, "sha256": hashlib.sha256(b"partial").hexdigest()},
    )
    assert_clear_refusal(r)
    assert await sweep(ctx) == 0


@pytest.mark.asyncio
async def test_revoked_transfers_are_purged(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.body["state"]) == (200, "revoked")
    assert await sweep(ctx) == 1
    assert not (ctx.relay.data_dir / "objects" / sent.transfer_id).exists()
    assert ctx.rows("SELECT count(*) FROM key_locks") == [(0,)]
    assert ctx.rows("SELECT count(*) FROM manifest_records") == [(0,)]
    deleted = [r for r in await ctx.audit_records() if r["event_id"] == audit.STUDY_DELETED]
    assert [json.loads(r["detail"]) for r in deleted] == [{"reason": "revoked"}]
    assert (await status(ctx, sent)).body["state"] == "revoked"


@pytest.mark.asyncio
async def test_a_delivered_transfer_is_not_downloadable_after_expiry(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = await upload(ctx, sent, 0, b"slice" * 100)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/receipt",
        cred=ctx.tc,
        json={"instances": 1, "bytes": len(sealed), "destination": "pacs", "complete": True},
    )
    assert (r.status, r.body["state"]) == (200, "delivered")
    path = f"/api/v1/transfers/{sent.transfer_id}/objects/0"
    assert (await ctx.call("GET", path, cred=ctx.tc)).body == sealed

    ctx.clock.now = sent.expires_at
    for _ in range(2):  # before and after the sweeper removed the files
        r = await ctx.call("GET", path, cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found")
        r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.tc)
        assert (r.status, r.code) == (404, "not-found")
        await sweep(ctx)
    assert not (ctx.relay.data_dir / "objects" / sent.transfer_id).exists()
    st = await status(ctx, sent)
    assert (st.body["state"], st.body["receipt"]["instances"]) == ("delivered", 1)


# -- revoke -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_revoke_before_redemption_stops_it(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    proof = await code_proof(ctx, sent.code)
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.body["state"]) == (200, "revoked")
    r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
    assert (r.status, r.code) == (410, "revoked")
    assert (await redeem(ctx, sent.locator, proof)).problem == REFUSED
    assert (await redeem_capability(ctx, sent.capability)).problem == REFUSED
    assert ctx.rows("SELECT count(*) FROM key_locks") == [(0,)]
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.code) == (410, "revoked")
    r = await ctx.call(
        "PATCH",
        f"/api/v1/transfers/{sent.transfer_id}/objects/0",
        cred=ctx.er,
        data=b"x",
        headers={"Upload-Offset": "0"},
    )
    assert (r.status, r.code) == (409, "invalid-state")


@pytest.mark.asyncio
async def test_revoke_after_redemption_is_already_redeemed(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    sealed = await upload(ctx, sent, 0, b"slice")
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call("POST", f"/api/v1/transfers/{sent.transfer_id}/revoke", cred=ctx.er)
    assert (r.status, r.code) == (409, "already-redeemed")
    assert r.problem[2] == (
        "The trauma center has already taken this transfer, so it can no longer be revoked."
    )
    assert await state_of(ctx, sent) == ("redeemed", 0)
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/objects/0", cred=ctx.tc)
    assert (r.status, r.body) == (200, sealed)


# -- health and the OpenAPI document ----------------------------------------------------------


@pytest.mark.asyncio
async def test_healthz(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/healthz")
    assert (r.status, r.body) == (200, {"status": "ok"})


@pytest.mark.asyncio
async def test_openapi_document_is_valid_and_lists_every_route(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/api/openapi.json")
    assert r.status == 200
    document = r.body
    validate(document)
    assert ctx.relay.app is not None
    served = set()
    for route in ctx.relay.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if isinstance(path, str) and route.method != "HEAD":
            served.add((route.method.lower(), path))
    api = {(m, p) for m, p in served if p.startswith("/api/")}
    assert len(api) >= 18
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert api <= documented
    assert ("get", "/healthz") in documented
    assert documented <= served
    public = {
        (m, p)
        for p, ops in document["paths"].items()
        for m, op in ops.items()
        if op.get("security") == []
    }
    assert {
        ("post", "/api/v1/authorizations"),
        ("get", "/api/openapi.json"),
        ("get", "/healthz"),
    } <= public
    # everything a site does needs its credential, and the document says so
    site_only = {
        (m, p)
        for m, p in documented
        if p.startswith(("/api/v1/transfers", "/api/v1/redemptions", "/api/v1/sites"))
    }
    assert len(site_only) >= 16
    assert site_only.isdisjoint(public)
    assert document["security"] == [{"siteCredential": []}]


# -- audit ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_audit_chain_after_a_full_flow(ctx: Ctx) -> None:
    sent = await create_transfer(ctx, authorize=False)
    sealed = seal_note(sent.data_key, sent.transfer_id, "break-glass", {"reason": "unconscious"})
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/break-glass",
        cred=ctx.er,
        json={"sealed_reason": b64(sealed)},
    )
    assert r.status == 200
    await upload(ctx, sent, 0, b"one")
    await upload(ctx, sent, 1, b"two")
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    assert (await put_record(ctx, sent, 1, b"close", final=True)).status == 201
    for _ in range(MAX_FAILED_ATTEMPTS):
        await redeem(ctx, sent.locator, wrong_proof())
    await redeem(ctx, unused_locator(sent), wrong_proof())
    sent.code = RedemptionCode.generate(sent.locator)
    sent.capability = Capability.generate(sent.transfer_id)
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/reissue",
        cred=ctx.er,
        json=await locks_body(sent),
    )
    assert r.status == 200
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    for index in (0, 1):
        r = await ctx.call(
            "GET", f"/api/v1/transfers/{sent.transfer_id}/objects/{index}", cred=ctx.tc
        )
        assert r.status == 200
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{sent.transfer_id}/receipt",
        cred=ctx.tc,
        json={"instances": 2, "bytes": 6, "destination": "folder", "complete": True},
    )
    assert r.status == 200

    records = await ctx.audit_records()
    assert verify_audit_chain(records)
    mine = [
        (r["event_id"], r["action"], r["outcome"])
        for r in records
        if r["transfer_id"] == sent.transfer_id
    ]
    assert mine.count((audit.BEGIN_TRANSFERRING, "transfer-created", "success")) == 1
    assert mine.count((audit.USER_AUTHENTICATION, "redeem-attempt", "failure")) == 10
    assert mine.count((audit.USER_AUTHENTICATION, "redeem-attempt", "success")) == 1
    assert mine.count((audit.SECURITY_ALERT, "break-glass-authorization", "success")) == 1
    assert mine.count((audit.SECURITY_ALERT, "transfer-locked", "failure")) == 1
    assert mine.count((audit.SECURITY_ALERT, "code-reissued", "success")) == 1
    assert mine.count((audit.INSTANCES_ACCESSED, "object-download", "success")) == 2
    assert mine.count((audit.INSTANCES_TRANSFERRED, "upload-closed", "success")) == 1
    assert mine.count((audit.IMPORT, "delivery-receipt", "success")) == 1
    unknown = [r for r in records if r["transfer_id"] is None and r["action"] == "redeem-attempt"]
    assert [r["outcome"] for r in unknown] == ["failure"]
    # the chain is in time order and every link is the previous hash
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    assert all(bytes(b["prev_hash"]) == bytes(a["hash"]) for a, b in itertools.pairwise(records))
    # no secret of the transfer ever reaches the audit trail
    trail = json.dumps(
        [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    )
    for secret in (sent.code.compact(), sent.token, sent.capability.to_text(), b64(sent.data_key)):
        assert secret not in trail


@pytest.mark.asyncio
async def test_audit_records_cannot_be_changed_and_tampering_is_detected(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await redeem(ctx, sent.locator, wrong_proof())
    assert verify_audit_chain(await ctx.audit_records())
    with contextlib.closing(ctx.db()) as db:
        for statement in (
            "UPDATE audit SET detail = '{}' WHERE seq = 2",
            "DELETE FROM audit WHERE seq = 2",
            "DELETE FROM audit",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
            db.rollback()
    count = len(await ctx.audit_records())
    assert count >= 5

    # someone with the file drops the triggers and rewrites one record's detail
    with contextlib.closing(ctx.db()) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        (detail,) = db.execute("SELECT detail FROM audit WHERE seq = 3").fetchone()
        db.execute(
            "UPDATE audit SET detail = ? WHERE seq = 3",
            (detail.replace("}", ',"x":1}') if detail != "{}" else '{"x":1}',),
        )
        db.commit()
    records = await ctx.audit_records()
    assert len(records) == count
    assert not verify_audit_chain(records)


@pytest.mark.asyncio
async def test_deleting_an_audit_record_is_detected(ctx: Ctx) -> None:
    await create_transfer(ctx)
    with contextlib.closing(ctx.db()) as db:
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute("DELETE FROM audit WHERE seq = 2")
        db.commit()
    assert not verify_audit_chain(await ctx.audit_records())


# -- hostile input ----------------------------------------------------------------------------


def assert_clear_refusal(r: Reply, *statuses: int) -> None:
    """A 4xx problem document with a sentence, never a 500."""
    status_, type_, detail = r.problem
    assert 400 <= status_ < 500, r
    assert not statuses or status_ in statuses, r
    assert type_.startswith(PROBLEM)
    assert type_ != PROBLEM + "internal"
    assert isinstance(detail, str)
    assert detail.strip()


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("relay.sqlite3")
    }


@contextlib.contextmanager
def nothing_changes(ctx: Ctx) -> Iterator[None]:
    """Asserts that no file under the data directory and no table except the audit changed."""
    tables = ("transfers", "key_locks", "objects", "manifest_records", "sites")
    before_files = tree(ctx.relay.data_dir)
    before = {t: ctx.rows(f"SELECT * FROM {t}") for t in tables}  # noqa: S608 - fixed names
    yield
    assert tree(ctx.relay.data_dir) == before_files
    assert {t: ctx.rows(f"SELECT * FROM {t}") for t in tables} == before  # noqa: S608


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        b'{"recipient": 5}',
        b'{"recipient": "county-trauma", "expires_in": 1e400}',
        b'{"recipient": "county-trauma", "expires_in": "3600"}',
        b'{"recipient": "county-trauma", "expires_in": 10}',
        b'{"recipient": "county-trauma", "expires_in": true}',
        b'{"recipient": "county-trauma", "expires_in": 1' + b"0" * 5000 + b"}",
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
    ids=[
        "syntax",
        "array",
        "string",
        "not-utf8",
        "wrong-type",
        "infinite",
        "numeric-string",
        "too-short",
        "boolean",
        "huge-integer",
        "deep-array",
        "deep-object",
    ],
)
async def test_malformed_json_is_a_clear_400(ctx: Ctx, body: bytes) -> None:
    with nothing_changes(ctx):
        r = await ctx.call(
            "POST",
            "/api/v1/transfers",
            cred=ctx.er,
            data=body,
            headers={"Content-Type": "application/json"},
        )
    assert_clear_refusal(r, 400)


@pytest.mark.asyncio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_json_body_is_refused(ctx: Ctx, chunked: bool) -> None:
    body = json.dumps({"recipient": RECEIVER, "padding": "x" * (4 * 1024 * 1024)}).encode()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    with nothing_changes(ctx):
        r = await ctx.call(
            "POST",
            "/api/v1/transfers",
            cred=ctx.er,
            data=stream() if chunked else io.BytesIO(body),
            headers={"Content-Type": "application/json"},
        )
    assert_clear_refusal(r, 400, 413)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "index", ["abc", "-1", "1e3", "0x10", "1.5", "%C2%B2", "%D9%A3", "1234567890", "%20"]
)
async def test_non_integer_indices_are_refused(ctx: Ctx, index: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    base = f"{ctx.relay.url}/api/v1/transfers/{sent.transfer_id}"
    with nothing_changes(ctx):
        replies = [
            await ctx.call(
                "PATCH",
                URL(f"{base}/objects/{index}", encoded=True),
                cred=ctx.er,
                data=b"x",
                headers={"Upload-Offset": "0"},
            ),
            await ctx.call(
                "POST",
                URL(f"{base}/objects/{index}/complete", encoded=True),
                cred=ctx.er,
                json={"size": 1, "sha256": "0" * 64},
            ),
            await ctx.call(
                "PUT",
                URL(f"{base}/manifest/{index}", encoded=True),
                cred=ctx.er,
                data=b"record",
            ),
        ]
    for r in replies:
        assert_clear_refusal(r, 400, 404)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "offset",
    [None, "", "-1", "abc", "1.0", "+0", "0x0", "\u00b2", "\u0663", "1" + "0" * 40],
)
async def test_bad_upload_offsets_are_refused(ctx: Ctx, offset: str | None) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    headers = {} if offset is None else {"Upload-Offset": offset}
    path = f"/api/v1/transfers/{sent.transfer_id}/objects/1"
    with nothing_changes(ctx):
        r = await ctx.call("PATCH", path, cred=ctx.er, data=b"junk", headers=headers)
    assert_clear_refusal(r, 400, 409)
    if r.status == 409:
        assert (r.code, r.body["offset"]) == ("upload-offset-mismatch", 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "transfer_id",
    [
        "..%2F..",
        "..%2F..%2Fdecoy.key",
        "%2E%2E%2F%2E%2E%2Frelay.sqlite3",
        "..%5C..%5Cdecoy.key",
        "%2Fetc%2Fpasswd",
        "..",
        "%00",
        "0123456789abcdefghjkmnpq",  # a transfer id in lower case is not one
        "0123456789ABCDEFGHJKMNPQR",
        "0123456789ABCDEFGHJKMNPU",
    ],
)
async def test_path_traversal_in_transfer_ids_is_refused(ctx: Ctx, transfer_id: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    base = f"{ctx.relay.url}/api/v1/transfers/{transfer_id}"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", "/objects/0", {"data": b"x", "headers": {"Upload-Offset": "0"}}),
        ("POST", "/objects/0/complete", {"json": {"size": 1, "sha256": "0" * 64}}),
        ("GET", "/objects", {}),
        ("GET", "/objects/0", {}),
        ("PUT", "/manifest/0", {"data": b"record"}),
        ("GET", "/manifest", {}),
        ("GET", "", {}),
        ("POST", "/revoke", {}),
    ]
    with nothing_changes(ctx):
        for method, suffix, kwargs in attempts:
            for cred in (ctx.er, ctx.tc):
                r = await ctx.call(method, URL(base + suffix, encoded=True), cred=cred, **kwargs)
                assert_clear_refusal(r, 400, 403, 404)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params",
    [
        {"from": "abc"},
        {"from": "1" + "0" * 30},
        {"from": "-" + "1" + "0" * 30},
        {"wait": "soon"},
        {"from": "1.5"},
    ],
)
async def test_bad_manifest_queries_are_refused(ctx: Ctx, params: dict[str, str]) -> None:
    sent = await create_transfer(ctx)
    assert (await put_record(ctx, sent, 0, b"summary", final=False)).status == 201
    r = await ctx.call(
        "GET", f"/api/v1/transfers/{sent.transfer_id}/manifest", cred=ctx.er, params=params
    )
    assert_clear_refusal(r, 400)


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


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "range_header", ["bytes=", "bytes=5-10", "items=0-", "bytes=-5", "bytes=\u00b2-"]
)
async def test_bad_range_headers_are_refused(ctx: Ctx, range_header: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    r = await ctx.call(
        "GET",
        f"/api/v1/transfers/{sent.transfer_id}/objects/0",
        cred=ctx.tc,
        headers={"Range": range_header},
    )
    assert_clear_refusal(r, 400, 416)


# -- audit of every access, and bounded state -------------------------------------------------


async def audit_since(ctx: Ctx, count: int) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(event id, action, outcome, actor, detail) of the audit records after the first `count`."""
    return [
        (r["event_id"], r["action"], r["outcome"], r["actor"], json.loads(r["detail"]))
        for r in (await ctx.audit_records())[count:]
    ]


def assert_no_secret(records: list[dict[str, Any]], *secrets_: str) -> None:
    trail = json.dumps(
        [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    )
    for secret in secrets_:
        assert secret not in trail


def manifest_watchers(ctx: Ctx) -> dict[str, asyncio.Event]:
    assert ctx.relay.app is not None
    return ctx.relay.app[MANIFEST_EVENTS]


def waiting_on(ctx: Ctx, transfer_id: str) -> int:
    """How many manifest reads wait on the transfer's event."""
    return int(getattr(manifest_watchers(ctx).get(transfer_id), "waiters", 0))


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.mark.asyncio
async def test_manifest_reads_are_audited_once_per_request(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    tid = sent.transfer_id
    for seq in (0, 1):
        assert (await put_record(ctx, sent, seq, b"record %d" % seq, final=False)).status == 201
    path = f"/api/v1/transfers/{tid}/manifest"

    count = len(await ctx.audit_records())
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": "1"})
    assert [x["seq"] for x in r.body["records"]] == [1]
    assert await audit_since(ctx, count) == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", SENDER, {"from": 1, "count": 1})
    ]

    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    # a long poll that runs out: one record however long it waited
    count = len(await ctx.audit_records())
    r = await ctx.call("GET", path, cred=ctx.tc, params={"from": "2", "wait": "0.3"})
    assert (r.status, r.body["records"]) == (200, [])
    assert await audit_since(ctx, count) == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", RECEIVER, {"from": 2, "count": 0})
    ]
    # a long poll woken by a new record: still one record, counting what it returned
    count = len(await ctx.audit_records())
    poll = asyncio.create_task(
        ctx.call("GET", path, cred=ctx.tc, params={"from": "2", "wait": "20"})
    )
    await eventually(lambda: waiting_on(ctx, tid) == 1)
    assert (await put_record(ctx, sent, 2, b"closing", final=True)).status == 201
    r = await poll
    assert [x["seq"] for x in r.body["records"]] == [2]
    reads = [x for x in await audit_since(ctx, count) if x[1] == "manifest-read"]
    assert reads == [
        (audit.INSTANCES_ACCESSED, "manifest-read", "success", RECEIVER, {"from": 2, "count": 1})
    ]
    assert verify_audit_chain(await ctx.audit_records())


@pytest.mark.asyncio
async def test_holdings_reads_are_audited(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"sealed")
    assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
    count = len(await ctx.audit_records())
    assert (await holdings(ctx, sent))["manifest_records"] == 1
    assert await audit_since(ctx, count) == [
        (
            audit.APPLICATION_ACTIVITY,
            "holdings-read",
            "success",
            SENDER,
            {"objects": 1, "records": 1},
        )
    ]
    (record,) = (await ctx.audit_records())[count:]
    assert (record["transfer_id"], record["actor_role"]) == (sent.transfer_id, "sending")


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
    assert verify_audit_chain(records)


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
    assert verify_audit_chain(records)


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
@pytest.mark.parametrize("complete", ["no", "false", 1, 0, None, [], {}])
async def test_receipt_complete_must_be_a_json_boolean(ctx: Ctx, complete: object) -> None:
    sent = await create_transfer(ctx)
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    path = f"/api/v1/transfers/{sent.transfer_id}/receipt"
    body = {"instances": 1, "bytes": 1, "destination": "pacs"}
    with nothing_changes(ctx):
        r = await ctx.call("POST", path, cred=ctx.tc, json={**body, "complete": complete})
    assert r.problem == (400, PROBLEM + "bad-request", "'complete' must be true or false.")
    assert (await state_of(ctx, sent))[0] == "redeemed"
    r = await ctx.call("POST", path, cred=ctx.tc, json={**body, "complete": False})
    assert (r.status, r.body["state"]) == (200, "delivered")
    assert (await status(ctx, sent)).body["receipt"]["complete"] is False


@pytest.mark.asyncio
async def test_manifest_waits_leave_nothing_behind(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    for tid, expected in [(new_transfer_id(), 404), (sent.transfer_id, 200)]:
        for wait in ("0", "0.2"):
            r = await ctx.call(
                "GET",
                f"/api/v1/transfers/{tid}/manifest",
                cred=ctx.er,
                params={"wait": wait},
            )
            assert r.status == expected
            assert manifest_watchers(ctx) == {}, (tid, wait)
    # two waiters share one event; it goes once both are answered
    path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
    polls = [
        asyncio.create_task(ctx.call("GET", path, cred=ctx.er, params={"wait": "20"}))
        for _ in range(2)
    ]
    await eventually(lambda: waiting_on(ctx, sent.transfer_id) == 2)
    assert list(manifest_watchers(ctx)) == [sent.transfer_id]
    assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
    for poll in polls:
        assert len((await poll).body["records"]) == 1
    assert manifest_watchers(ctx) == {}


@pytest.mark.asyncio
async def test_upload_locks_are_dropped_and_still_exclusive(ctx: Ctx) -> None:
    assert ctx.relay.app is not None
    locks = ctx.relay.app[UPLOAD_LOCKS]
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"first")
    assert locks == {}
    # ten PATCHes race for the start of one object: the lock lets exactly one through
    sealed = seal_object(sent.data_key, sent.transfer_id, 1, b"x" * 100_000)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/1"
    replies = await asyncio.gather(
        *(
            ctx.call(
                "PATCH",
                base,
                cred=ctx.er,
                data=_in_pieces(sealed, 2),
                headers={"Upload-Offset": "0"},
            )
            for _ in range(10)
        )
    )
    assert sorted(r.status for r in replies) == [200] + [409] * 9
    assert {r.body["offset"] for r in replies if r.status == 409} == {len(sealed)}
    assert locks == {}
    assert (await holdings(ctx, sent))["objects"][1] == {
        "index": 1,
        "offset": len(sealed),
        "complete": False,
    }


@pytest.mark.asyncio
async def test_manifest_records_and_pages_are_bounded(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    r = await put_record(ctx, sent, 0, bytes(MAX_RECORD_SIZE + 1), final=False)
    assert r.problem == (
        400,
        PROBLEM + "bad-request",
        f"A manifest record must be 1 to {MAX_RECORD_SIZE} bytes.",
    )
    per_page = PAGE_BYTES // MAX_RECORD_SIZE
    for seq in range(per_page + 1):
        record = seq.to_bytes(4, "big") * (MAX_RECORD_SIZE // 4)
        assert (await put_record(ctx, sent, seq, record, final=False)).status == 201
    path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
    r = await ctx.call("GET", path, cred=ctx.er)
    assert [x["seq"] for x in r.body["records"]] == list(range(per_page))
    assert sum(len(base64.b64decode(x["record"])) for x in r.body["records"]) <= PAGE_BYTES
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": str(per_page)})
    assert [x["seq"] for x in r.body["records"]] == [per_page]
    # small records still page by count
    for seq in range(per_page + 1, 600):
        assert (await put_record(ctx, sent, seq, b"small", final=False)).status == 201
    r = await ctx.call("GET", path, cred=ctx.er, params={"from": str(per_page + 1)})
    assert len(r.body["records"]) == 500
