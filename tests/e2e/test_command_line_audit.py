"""Acceptance, with the real CLI and relay process: `push` and `redeem` at the command line are
in the agents' own audit logs (`<state>/sending|receiving/console-audit.jsonl`, where the
consoles record the same actions), by the operating-system account: the transfer started, the
study redeemed on this machine, then written to a folder or imported into the PACS; and so are
`break-glass`, `reissue` and `revoke`, as the ER console records the same buttons (a refused
break-glass, re-issue or revocation too, as there)."""

from __future__ import annotations

import base64
import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from peers.orthanc import OrthancServer

from e2e.harness import CliRun, E2ERelay, pacs_address
from sending_site import journal
from sending_site.synthetic import make_ct_study
from site_agent.audit import FILE, verify_chain


def _records(state: Path, folder: str) -> list[dict[str, Any]]:
    log = state / folder / FILE
    verify_chain(log)
    return [json.loads(line) for line in log.read_text().splitlines()]


def _by_operator(record: dict[str, Any]) -> None:
    assert record["who"] == f"{getpass.getuser()} (command line)"
    assert (record["where"], record["outcome"]) == ("local", "success")
    assert record["detail"]["via"] == "command line"


def test_a_push_and_a_redemption_to_a_folder_are_audited_where_they_ran(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 3, seed=881)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    out = tmp_path / "out"
    redeemed = relay.redeem(pushed["code"], workdir=tmp_path, out=out).ok().json()
    transfer = pushed["transfer_id"]

    (started,) = _records(tmp_path / "er-state", "sending")
    _by_operator(started)
    assert (started["action"], started["event_id"]) == ("transfer-started", "110106")
    detail = started["detail"]
    assert (detail["transfer"], detail["recipient"], detail["images"]) == (
        transfer,
        "county-trauma",
        len(files),
    )
    assert (detail["resumed"], detail["break_glass"]) == (False, False)

    opened, written = _records(tmp_path / "tc-state", "receiving")
    for record in (opened, written):
        _by_operator(record)
        assert record["detail"]["transfer"] == transfer
    assert (opened["action"], opened["event_id"]) == ("study-redeemed", "110103")
    assert opened["detail"]["to"] == str(out)
    assert (written["action"], written["event_id"]) == ("study-exported", "110106")
    assert written["detail"]["instances"] == redeemed["instances"] == len(files)
    assert pushed["code"] not in (tmp_path / "er-state" / "sending" / FILE).read_text()
    assert pushed["code"] not in (tmp_path / "tc-state" / "receiving" / FILE).read_text()


@pytest.mark.peers
def test_a_redemption_into_the_pacs_is_audited_as_an_import(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 2, seed=882)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    pacs = pacs_address(orthanc)
    relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs).ok()
    opened, imported = _records(tmp_path / "tc-state", "receiving")
    assert (opened["action"], opened["detail"]["to"]) == ("study-redeemed", pacs)
    assert (imported["action"], imported["event_id"]) == ("study-imported", "110107")
    assert imported["detail"]["instances"] == 2


REASON = "Unconscious after a fall, no family reachable."
CLINICIAN = "Dr. Grey"


def _er(relay: E2ERelay, tmp_path: Path, *args: str) -> CliRun:
    """`trauma-relay ARGS` at the ER that pushed (its state folder, its credential)."""
    return relay.as_sender([*args, "--state", str(tmp_path / "er-state")], workdir=tmp_path)


def test_break_glass_a_new_code_and_a_revocation_are_audited_as_the_console_does(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 2, seed=883)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    transfer = pushed["transfer_id"]
    _er(relay, tmp_path, "break-glass", transfer, "--reason", REASON, "--clinician", CLINICIAN).ok()
    _er(relay, tmp_path, "reissue", transfer, "--json").ok()
    sent = journal.load(tmp_path / "er-state", transfer)  # the new code's secrets
    _er(relay, tmp_path, "revoke", transfer).ok()

    started, glass, new_code, revoked = _records(tmp_path / "er-state", "sending")
    assert started["action"] == "transfer-started"
    for record in (glass, new_code, revoked):
        _by_operator(record)
        assert record["detail"]["transfer"] == transfer
    # The console's actions, event ids and details (`sending_site.console.transfer_pages`).
    assert (glass["action"], glass["event_id"]) == ("break-glass", "110113")
    assert (glass["detail"]["clinician"], glass["detail"]["already"]) == (CLINICIAN, False)
    assert (new_code["action"], new_code["event_id"]) == ("code-reissued", "110106")
    assert (revoked["action"], revoked["event_id"]) == ("transfer-revoked", "110106")
    assert revoked["detail"]["outcome_words"] == "revoked"
    text = (tmp_path / "er-state" / "sending" / FILE).read_text()
    secrets = [pushed["code"], sent.code, sent.capability, sent.authorization_token, REASON]
    for secret in [*secrets, relay.sender_credential, base64.b64encode(sent.data_key).decode()]:
        assert secret not in text


def test_a_refused_new_code_or_revocation_is_audited_as_refused(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """As the console's: a break-glass, a re-issue or a revocation refused is recorded with the
    refusal's name (not its sentence; a break-glass with the clinician who tried, never the
    reason); an id this machine never sent (or a code typed in its place) is refused before
    any record."""
    make_ct_study(tmp_path / "delivered", 2, seed=884)
    delivered = relay.push([tmp_path / "delivered"], workdir=tmp_path).ok().json()
    relay.authorize(delivered)
    relay.redeem(delivered["code"], workdir=tmp_path, out=tmp_path / "out").ok()
    make_ct_study(tmp_path / "withdrawn", 2, seed=885)
    withdrawn = relay.push([tmp_path / "withdrawn"], workdir=tmp_path).ok().json()
    _er(relay, tmp_path, "revoke", withdrawn["transfer_id"]).ok()

    _er(relay, tmp_path, "revoke", delivered["transfer_id"]).failed()
    _er(relay, tmp_path, "reissue", withdrawn["transfer_id"]).failed()
    glass = ("--reason", REASON, "--clinician", CLINICIAN)
    _er(relay, tmp_path, "break-glass", delivered["transfer_id"], *glass).failed()
    _er(relay, tmp_path, "break-glass", delivered["code"], *glass).failed()
    _er(relay, tmp_path, "revoke", delivered["code"]).failed()
    _er(relay, tmp_path, "reissue", "0" * 24).failed()

    records = _records(tmp_path / "er-state", "sending")
    done = [
        (r["action"], r["outcome"], r["detail"]["transfer"], r["detail"].get("why"))
        for r in records
        if r["action"] != "transfer-started"
    ]
    assert done == [
        ("transfer-revoked", "success", withdrawn["transfer_id"], None),
        ("transfer-revoked", "refused", delivered["transfer_id"], "AlreadyRedeemed"),
        ("code-reissued", "refused", withdrawn["transfer_id"], "TransferAbandoned"),
        ("break-glass", "refused", delivered["transfer_id"], "BreakGlassNotNeeded"),
    ]
    for record in records:
        assert record["who"] == f"{getpass.getuser()} (command line)"
        assert (record["where"], record["detail"]["via"]) == ("local", "command line")
    (glass_refused,) = [r for r in records if r["action"] == "break-glass"]
    assert glass_refused["event_id"] == "110113"
    assert set(glass_refused["detail"]) == {"via", "transfer", "why", "clinician"}
    assert glass_refused["detail"]["clinician"] == CLINICIAN
    text = (tmp_path / "er-state" / "sending" / FILE).read_text()
    assert delivered["code"] not in text
    assert REASON not in text


def _glass(*, clinician: str = CLINICIAN) -> tuple[str, ...]:
    return ("--json", "--break-glass", REASON, "--clinician", clinician)


def test_push_with_break_glass_is_audited_as_the_consoles_break_glass(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """`push --break-glass`, on a new transfer or on one already sent (resumed), records the
    console's `break-glass` (a security alert: the clinician, whether it was there already;
    never the reason): added by this push, as soon as the relay added it, before the
    transfer's own record (written once the code is shown); there already, with that record;
    once the family authorized, break-glass is not needed and not recorded (the console
    records none either)."""
    make_ct_study(tmp_path / "new", 2, seed=886)
    new = relay.push([tmp_path / "new"], workdir=tmp_path, extra=_glass()).ok().json()
    make_ct_study(tmp_path / "sent", 2, seed=887)
    sent = relay.push([tmp_path / "sent"], workdir=tmp_path).ok().json()
    resumed = relay.push([tmp_path / "sent"], workdir=tmp_path, extra=_glass()).ok().json()
    # Padded as typed: recorded as the console records it, trimmed.
    again = _glass(clinician=f"  {CLINICIAN} ")
    relay.push([tmp_path / "sent"], workdir=tmp_path, extra=again).ok()
    make_ct_study(tmp_path / "consented", 2, seed=888)
    consented = relay.push([tmp_path / "consented"], workdir=tmp_path).ok().json()
    relay.authorize(consented)
    relay.push([tmp_path / "consented"], workdir=tmp_path, extra=_glass()).ok()

    records = _records(tmp_path / "er-state", "sending")
    detail = ("transfer", "resumed", "already")
    done = [(r["action"], *(r["detail"].get(d) for d in detail)) for r in records]
    new_id, sent_id, consented_id = (p["transfer_id"] for p in (new, sent, consented))
    assert resumed["transfer_id"] == sent_id
    assert done == [
        ("break-glass", new_id, None, False),
        ("transfer-started", new_id, False, None),
        ("transfer-started", sent_id, False, None),
        ("break-glass", sent_id, None, False),
        ("transfer-started", sent_id, True, None),
        ("transfer-started", sent_id, True, None),
        ("break-glass", sent_id, None, True),
        ("transfer-started", consented_id, False, None),
        ("transfer-started", consented_id, True, None),
    ]
    for record in records:
        _by_operator(record)
        if record["action"] == "break-glass":
            # The console's record (`sending_site.console.transfer_pages.break_glass`).
            assert record["event_id"] == "110113"
            assert set(record["detail"]) == {"via", "transfer", "clinician", "already"}
            assert record["detail"]["clinician"] == CLINICIAN
    started = [r["detail"]["break_glass"] for r in records if r["action"] == "transfer-started"]
    assert started == [True, False, True, True, False, False]
    text = (tmp_path / "er-state" / "sending" / FILE).read_text()
    for pushed in (new, sent, consented):
        kept = journal.load(tmp_path / "er-state", pushed["transfer_id"])
        for secret in [pushed["code"], kept.capability, kept.authorization_token, REASON]:
            assert secret not in text
        assert base64.b64encode(kept.data_key).decode() not in text
    assert relay.sender_credential not in text


def test_a_transfer_sheet_written_is_audited_as_the_console_prints_one(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """`push --sheet` and `reissue --sheet` record the console's `sheet-printed` once the sheet
    is written (never its code); a sheet refused before anything is sent, or not asked for,
    is not recorded."""
    make_ct_study(tmp_path / "study", 2, seed=889)
    missing = ("--json", "--sheet", str(tmp_path / "nowhere" / "sheet.pdf"))
    relay.push([tmp_path / "study"], workdir=tmp_path, extra=missing).failed()
    sheet = tmp_path / "sheet.pdf"
    pushed = (
        relay.push([tmp_path / "study"], workdir=tmp_path, extra=("--json", "--sheet", str(sheet)))
        .ok()
        .json()
    )
    transfer = pushed["transfer_id"]
    assert sheet.read_bytes().startswith(b"%PDF")
    _er(relay, tmp_path, "reissue", transfer, "--json").ok()
    new_sheet = tmp_path / "new-sheet.pdf"
    _er(relay, tmp_path, "reissue", transfer, "--sheet", str(new_sheet), "--json").ok()
    assert new_sheet.read_bytes().startswith(b"%PDF")
    reissued = journal.load(tmp_path / "er-state", transfer)

    records = _records(tmp_path / "er-state", "sending")
    assert [(r["action"], r["detail"]["transfer"]) for r in records] == [
        ("transfer-started", transfer),
        ("sheet-printed", transfer),
        ("code-reissued", transfer),
        ("code-reissued", transfer),
        ("sheet-printed", transfer),
    ]
    for record in records:
        _by_operator(record)
    for printed in (records[1], records[4]):
        # The console's record (`sending_site.console.transfer_pages.sheet`).
        assert printed["event_id"] == "110106"
        assert set(printed["detail"]) == {"via", "transfer"}
    text = (tmp_path / "er-state" / "sending" / FILE).read_text()
    for secret in [pushed["code"], reissued.code, reissued.capability, relay.sender_credential]:
        assert secret not in text
