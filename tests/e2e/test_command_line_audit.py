"""Acceptance, with the real CLI and relay process: `push` and `redeem` at the command line are
in the agents' own audit logs (`<state>/sending|receiving/console-audit.jsonl`, where the
consoles record the same actions), by the operating-system account: the transfer started, the
study redeemed on this machine, then written to a folder or imported into the PACS; and so are
`break-glass`, `reissue` and `revoke`, as the ER console records the same buttons (a refused
re-issue or revocation too, as there)."""

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
    """As the console's: a re-issue or a revocation refused is recorded with the refusal's
    name (not its sentence); a break-glass refused is not (the console records none either);
    an id this machine never sent (or a code typed in its place) is refused before any record."""
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
    ]
    for record in records:
        assert record["who"] == f"{getpass.getuser()} (command line)"
        assert (record["where"], record["detail"]["via"]) == ("local", "command line")
    assert delivered["code"] not in (tmp_path / "er-state" / "sending" / FILE).read_text()
