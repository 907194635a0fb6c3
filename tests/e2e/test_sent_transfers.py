"""Acceptance: the ER follows what it sent. `trauma-relay transfers` lists this site's
transfers (from its journals) with each one's status on the relay, and the receipt once
delivered; `trauma-relay revoke` withdraws one (its code stops working) and refuses, changing
nothing, once the trauma center has redeemed it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e.harness import CliRun, E2ERelay
from sending_site.synthetic import make_ct_study


def _push(relay: E2ERelay, tmp_path: Path, name: str, count: int, seed: int) -> dict[str, Any]:
    make_ct_study(tmp_path / name, count, seed=seed)
    return relay.push([tmp_path / name], workdir=tmp_path).ok().json()


def _er(relay: E2ERelay, tmp_path: Path, *args: str) -> CliRun:
    """`trauma-relay ARGS` at the ER that pushed (its state folder, its credential)."""
    return relay.as_sender([*args, "--state", str(tmp_path / "er-state")], workdir=tmp_path)


def test_transfers_and_revoke(relay: E2ERelay, tmp_path: Path) -> None:
    delivered = _push(relay, tmp_path, "delivered", 3, seed=1)
    relay.authorize(delivered)
    relay.redeem(delivered["code"], workdir=tmp_path, out=tmp_path / "out").ok()
    waiting = _push(relay, tmp_path, "waiting", 2, seed=2)
    withdrawn = _push(relay, tmp_path, "withdrawn", 2, seed=3)
    relay.authorize(withdrawn)

    revoked = _er(relay, tmp_path, "revoke", withdrawn["transfer_id"]).ok()
    assert f"Transfer {withdrawn['transfer_id']} revoked" in revoked.stdout
    assert "no longer work" in revoked.stdout
    relay.redeem(withdrawn["code"], workdir=tmp_path, out=tmp_path / "out2").failed()

    refused = _er(relay, tmp_path, "revoke", delivered["transfer_id"]).failed()
    assert f"Transfer {delivered['transfer_id']} cannot be revoked" in refused.message
    assert "the trauma center redeemed it" in refused.message

    listing = _er(relay, tmp_path, "transfers", "--json").ok()
    by_id = {t["transfer_id"]: t for t in listing.json()["transfers"]}
    assert set(by_id) == {t["transfer_id"] for t in (delivered, waiting, withdrawn)}
    assert by_id[delivered["transfer_id"]]["state"] == "delivered"  # the refusal changed nothing
    receipt = by_id[delivered["transfer_id"]]["receipt"]
    assert (receipt["instances"], receipt["destination"]) == (3, "folder")
    assert by_id[waiting["transfer_id"]]["state"] == "awaiting_authorization"
    assert by_id[withdrawn["transfer_id"]]["state"] == "revoked"
    assert all(t["recipient"] == "County Trauma" for t in by_id.values())

    shown = _er(relay, tmp_path, "transfers").ok()
    lines = shown.stdout.splitlines()
    status = {lines[i].split()[0]: lines[i + 1].strip() for i in range(0, len(lines), 2)}
    assert status[delivered["transfer_id"]].startswith("delivered ")
    assert status[delivered["transfer_id"]].endswith(
        ": 3 images into a folder at the trauma center"
    )
    assert status[waiting["transfer_id"]] == "awaiting authorization by the patient or family"
    assert status[withdrawn["transfer_id"]].startswith("revoked ")
    # Newest first.
    assert [line.split()[0] for line in lines[::2]] == [
        withdrawn["transfer_id"],
        waiting["transfer_id"],
        delivered["transfer_id"],
    ]


def test_revoking_a_transfer_this_machine_did_not_send(relay: E2ERelay, tmp_path: Path) -> None:
    run = _er(relay, tmp_path, "revoke", "0" * 24).failed()
    assert "This machine has no record of transfer" in run.message


def test_a_delivered_transfers_keys_are_forgotten_at_the_er(
    relay: E2ERelay, tmp_path: Path
) -> None:
    delivered = _push(relay, tmp_path, "forgotten", 2, seed=5)
    relay.authorize(delivered)
    relay.redeem(delivered["code"], workdir=tmp_path, out=tmp_path / "out").ok()
    waiting = _push(relay, tmp_path, "kept", 2, seed=6)
    folder = tmp_path / "er-state" / "sending"
    before = {
        tid: json.loads((folder / f"{tid}.json").read_text()) for tid in _ids(delivered, waiting)
    }
    assert all(body["data_key"] and body["phone_key"] for body in before.values())

    _er(relay, tmp_path, "transfers").ok()

    over = json.loads((folder / f"{delivered['transfer_id']}.json").read_text())
    assert (
        over["data_key"],
        over["capability"],
        over["authorization_token"],
        over["phone_key"],
    ) == (
        "",
        "",
        "",
        "",
    )
    assert over["code"] == delivered["code"].replace("-", "")  # words: it unlocks nothing now
    text = (folder / f"{delivered['transfer_id']}.json").read_text()
    old = before[delivered["transfer_id"]]
    for secret in (
        old["data_key"],
        old["capability"],
        old["authorization_token"],
        old["phone_key"],
    ):
        assert secret not in text
    live = json.loads((folder / f"{waiting['transfer_id']}.json").read_text())
    # A live transfer keeps what it needs; the list only adds the trauma center's name as the
    # relay shows it, to name it so while the relay is out of reach.
    assert live == dict(before[waiting["transfer_id"]], recipient_display_name="County Trauma")
    listed = _er(relay, tmp_path, "transfers").ok().stdout  # and the list still reads
    assert f"{delivered['transfer_id']} to " in listed


def _ids(*pushed: dict[str, Any]) -> list[str]:
    return [str(p["transfer_id"]) for p in pushed]
