"""Every event of a transfer's life is in the audit trail, and in both exports with its DICOM
event id: a site signs in or is refused, a transfer is created, its upload begins and finishes,
it is authorized by the patient, the family or break-glass, a wrong code and the right one are
tried, objects are downloaded and the delivery receipt comes; another transfer is revoked,
another expires and the sweeper deletes them; a guesser is throttled. `audit verify` still
finds the chain intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from relay_harness import RECEIVER, SENDER, FakeClock, running_relay

from relay.audit_trail.reading import read_audit_records
from relay.storage.audit_chain import verify_audit_chain
from relay_api.plumbing import (
    Ctx,
    b64,
    code_proof,
    create_transfer,
    put_record,
    redeem,
    sweep,
    upload,
    wrong_proof,
)
from transfer_codes.notes import seal_note
from transfer_codes.sealed import seal_object

DAYS = 24 * 3600
SHORT_EXPIRY = 600.0  # seconds: the configured expiry, which the transfer that expires keeps

# What each event is recorded as: (action, outcome) and its DICOM PS3.15 event id, written out
# (not taken from `relay.audit`) so that a changed id fails here.
EXPECTED = {
    ("site-authentication", "failure"): "110114",  # a refused credential
    ("site-authentication", "success"): "110114",  # an accepted one
    ("transfer-created", "success"): "110102",
    ("upload-begun", "success"): "110102",
    ("upload-closed", "success"): "110104",  # the upload finished
    ("patient-authorization", "success"): "110100",  # patient and family
    ("break-glass-authorization", "success"): "110113",
    ("redeem-attempt", "failure"): "110114",
    ("redeem-attempt", "success"): "110114",
    ("object-download", "success"): "110103",
    ("delivery-receipt", "success"): "110107",
    ("transfer-revoked", "success"): "110113",
    ("transfer-expired", "success"): "110100",
    ("transfer-purged", "success"): "110105",
    ("guessing-throttled", "failure"): "110113",
}


@pytest_asyncio.fixture
async def short(tmp_path: Path) -> AsyncIterator[Ctx]:
    """A relay whose transfers expire after SHORT_EXPIRY unless the sender asks for longer, and
    whose guessing throttle engages after three failures of one trauma center."""
    clock = FakeClock()
    async with (
        running_relay(
            tmp_path / "relay", clock=clock, expiry=SHORT_EXPIRY, guess_limit_site=3
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http)


async def _authorize(ctx: Ctx, token: str, role: str) -> None:
    r = await ctx.call(
        "POST", "/api/v1/authorizations", json={"token": token, "authorizer_role": role}
    )
    assert (r.status, r.body["state"]) == (200, "authorized"), r


async def _cli(*args: str) -> str:
    """`trauma-relay ARGS` (this checkout's) to completion; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trauma_relay.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRAUMA_RELAY_")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _dicom_events(document: str) -> list[tuple[str | None, str | None, str | None, str | None]]:
    """(action, event id, outcome indicator, transfer id) of each DICOM audit message."""
    found = []
    for message in ET.fromstring(document):  # noqa: S314 (what the relay wrote)
        action = message.find("EventIdentification/EventTypeCode")
        event = message.find("EventIdentification")
        event_id = message.find("EventIdentification/EventID")
        assert action is not None
        assert event is not None
        assert event_id is not None
        transfer = message.find(
            "ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='20']"
        )
        found.append(
            (
                action.get("csd-code"),
                event_id.get("csd-code"),
                event.get("EventOutcomeIndicator"),
                transfer.get("ParticipantObjectID") if transfer is not None else None,
            )
        )
    return found


@pytest.mark.asyncio
async def test_every_event_of_a_transfer_life_is_audited_and_exported(short: Ctx) -> None:
    ctx = short
    r = await ctx.call("GET", "/api/v1/sites", cred="not-a-credential-of-this-relay")
    assert r.status == 401

    # Delivered: uploaded in chunks, authorized by the patient, a wrong code, the right one.
    delivered = await create_transfer(ctx, authorize=False, expires_in=3 * DAYS)
    sealed = seal_object(delivered.data_key, delivered.transfer_id, 0, b"slice" * 4000)
    base = f"/api/v1/transfers/{delivered.transfer_id}"
    ends = {"Upload-Length": str(len(sealed)), "Upload-SHA256": hashlib.sha256(sealed).hexdigest()}
    for start, end, more in ((0, 1000, {}), (1000, len(sealed), ends)):  # the last one completes
        r = await ctx.call(
            "PATCH",
            base + "/objects/0",
            cred=ctx.er,
            data=sealed[start:end],
            headers={"Upload-Offset": str(start), **more},
        )
        assert r.status == 200, r
    assert r.body["complete"] is True
    other = await upload(ctx, delivered, 1, b"another slice")
    assert (await put_record(ctx, delivered, 0, b"summary", final=False)).status == 201
    assert (await put_record(ctx, delivered, 1, b"close", final=True)).status == 201
    await _authorize(ctx, delivered.token, "patient")
    assert (await redeem(ctx, delivered.locator, wrong_proof())).status == 403
    right = await code_proof(ctx, delivered.code)
    assert (await redeem(ctx, delivered.locator, right)).status == 200
    for index in (0, 1):
        r = await ctx.call("GET", f"{base}/objects/{index}", cred=ctx.tc)
        assert r.status == 200, r
    r = await ctx.call(
        "POST",
        base + "/receipt",
        cred=ctx.tc,
        json={"instances": 2, "bytes": 20013, "destination": "folder", "complete": True},
    )
    assert r.status == 200, r

    # Authorized by the family; by break-glass; revoked by its sender.
    family = await create_transfer(ctx, authorize=False, expires_in=3 * DAYS)
    await _authorize(ctx, family.token, "family")
    glass = await create_transfer(ctx, authorize=False, expires_in=3 * DAYS)
    reason = seal_note(glass.data_key, glass.transfer_id, "break-glass", {"reason": "unconscious"})
    r = await ctx.call(
        "POST",
        f"/api/v1/transfers/{glass.transfer_id}/break-glass",
        cred=ctx.er,
        json={"sealed_reason": b64(reason)},
    )
    assert r.status == 200, r
    revoked = await create_transfer(ctx, expires_in=3 * DAYS)
    r = await ctx.call("POST", f"/api/v1/transfers/{revoked.transfer_id}/revoke", cred=ctx.er)
    assert r.status == 200, r

    # Two more wrong codes: the trauma center's third failure engages the throttle.
    for sent in (family, glass):
        assert (await redeem(ctx, sent.locator, wrong_proof())).status == 403
    assert (await redeem(ctx, family.locator, wrong_proof())).status == 429

    # Expires with the configured expiry; the sweeper expires and deletes it, deletes the
    # revoked one, and the delivered one once its grace has passed.
    expiring = await create_transfer(ctx)
    assert expiring.expires_at == pytest.approx(ctx.clock.now + SHORT_EXPIRY)
    await upload(ctx, expiring, 0, b"never taken")
    ctx.clock.now = expiring.expires_at + 2 * 3600
    assert await sweep(ctx) == 3

    # The table: every event, each with its event id, and the chain intact.
    records = read_audit_records(ctx.relay.data_dir)
    assert verify_audit_chain(records) == []
    seen = {(r["action"], r["outcome"]): r["event_id"] for r in records}
    assert {k: seen.get(k) for k in EXPECTED} == EXPECTED
    by_transfer = [(r["action"], r["transfer_id"], json.loads(r["detail"])) for r in records]
    began = [t for action, t, _ in by_transfer if action == "upload-begun"]
    assert began == [delivered.transfer_id, expiring.transfer_id]  # once each, not per chunk
    closed = [(t, d) for a, t, d in by_transfer if a == "upload-closed"]
    assert closed == [(delivered.transfer_id, {"objects": 2, "bytes": len(sealed) + len(other)})]
    authorized = {
        (t, r["actor"])
        for r in records
        if (t := r["transfer_id"]) in {delivered.transfer_id, family.transfer_id, glass.transfer_id}
        and r["action"].endswith("authorization")
    }
    assert authorized == {
        (delivered.transfer_id, "patient"),
        (family.transfer_id, "family"),
        (glass.transfer_id, SENDER),
    }
    assert [t for a, t, _ in by_transfer if a == "transfer-expired"] == [expiring.transfer_id]
    purged = {t: d["reason"] for a, t, d in by_transfer if a == "transfer-purged"}
    assert purged == {
        expiring.transfer_id: "expired",
        revoked.transfer_id: "revoked",
        delivered.transfer_id: "delivered",
    }
    signed_in = [r["actor"] for r in records if r["action"] == "site-authentication"]
    assert sorted(set(signed_in)) == sorted([RECEIVER, SENDER, "unknown"])
    assert signed_in.count(SENDER) == 1  # once, not once a request

    # Both exports, through the auditor's command, hold the same events with the same ids.
    data = ["--data", str(ctx.relay.data_dir)]
    verified = json.loads(await _cli("audit", "verify", *data, "--json"))
    assert (verified["intact"], verified["records"]) == (True, len(records))
    lines = [
        json.loads(line)
        for line in (await _cli("audit", "export", *data, "--format", "jsonl")).splitlines()
    ]
    assert [
        (x["seq"], x["action"], x["event_id"], x["outcome"], x["transfer_id"]) for x in lines
    ] == [(r["seq"], r["action"], r["event_id"], r["outcome"], r["transfer_id"]) for r in records]
    dicom = _dicom_events(await _cli("audit", "export", *data, "--format", "dicom"))
    assert [(a, e, t) for a, e, _, t in dicom] == [
        (r["action"], r["event_id"], r["transfer_id"]) for r in records
    ]
    outcomes = {(a, "success" if o == "0" else "failure"): e for a, e, o, _ in dicom}
    assert {k: outcomes.get(k) for k in EXPECTED} == EXPECTED
