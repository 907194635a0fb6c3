"""Acceptance, with the real CLI and relay process: `push` and `redeem` at the command line are
in the agents' own audit logs (`<state>/sending|receiving/console-audit.jsonl`, where the
consoles record the same actions), by the operating-system account: the transfer started, the
study redeemed on this machine, then written to a folder or imported into the PACS."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, pacs_address
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
