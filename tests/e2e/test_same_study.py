"""Acceptance, with the real CLI and relay process: a second push of a study finds the transfer
already made for it. The same files resume it (same code, nothing uploaded again); a delivered
study is not sent again unless asked (`--replace`); other files of a study already sent need
`--replace`, which revokes the old code. Break-glass is added to a transfer already sent, with
the same code and no second upload, and refused once the patient has authorized."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from e2e.harness import CliRun, E2ERelay, run_cli
from sending_site.synthetic import make_ct_study

REASON = "Unconscious after a fall, no family reachable."
CLINICIAN = "Dr. A. Example"


def _transfers(relay: E2ERelay) -> set[str]:
    return {row[0] for row in relay.query("SELECT id FROM transfers")}


def _uploads_since(relay: E2ERelay, mark: int, transfer_id: str) -> list[str]:
    """The upload requests (objects, manifest) the relay logged for the transfer since `mark`."""
    log = relay.log_file.read_bytes()[mark:].decode(errors="replace")
    path = rf"(?:PATCH|PUT|POST) /api/v1/transfers/{transfer_id}/(?:objects|manifest)\S*"
    return re.findall(path, log)


def _state(relay: E2ERelay, transfer_id: str) -> tuple[str, str | None]:
    row = relay.query("SELECT state, authorized_by FROM transfers WHERE id = ?", transfer_id)
    return str(row[0][0]), row[0][1]


def _break_glass(relay: E2ERelay, transfer_id: str, state: Path, *extra: str) -> CliRun:
    args = ["break-glass", transfer_id, "--state", str(state), *extra]
    return run_cli(args, cwd=state.parent, credential=relay.sender_credential)


def test_the_same_files_pushed_again_resume_the_same_transfer(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 3, seed=31)
    first = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    assert _uploads_since(relay, 0, first["transfer_id"]), "the log shows no upload at all"
    made = _transfers(relay)
    mark = relay.log_file.stat().st_size

    again = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    shown = relay.push([tmp_path / "study"], workdir=tmp_path, extra=()).ok()

    assert (again["transfer_id"], again["code"]) == (first["transfer_id"], first["code"])
    assert (again["resumed"], again["uploaded_before"], again["replaced"]) == (True, True, [])
    assert _transfers(relay) == made
    assert _uploads_since(relay, mark, first["transfer_id"]) == []
    assert "The relay already holds all of this study" in shown.stdout
    assert f"Code:        {first['code']}" in shown.stdout
    assert "Nothing uploaded again: the relay holds all 3 images." in shown.stdout
    relay.authorize(first)
    redeemed = relay.redeem(first["code"], workdir=tmp_path, out=tmp_path / "inbox").ok().json()
    assert redeemed["instances"] == 3


def test_a_delivered_study_is_sent_again_only_when_asked(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 3, seed=32)
    first = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(first)
    relay.redeem(first["code"], workdir=tmp_path, out=tmp_path / "inbox").ok()
    made = _transfers(relay)

    refused = relay.push([tmp_path / "study"], workdir=tmp_path).failed()

    assert refused.returncode != 0
    assert "This study was already delivered to County Trauma on " in refused.message
    assert f"(transfer {first['transfer_id']}: 3 images stored in a folder" in refused.message
    assert "Nothing was sent. If they ask for it again, run the same command with --replace." in (
        refused.message
    )
    assert _transfers(relay) == made

    again = relay.push([tmp_path / "study"], workdir=tmp_path, extra=["--json", "--replace"])
    sent = again.ok().json()
    assert sent["transfer_id"] not in made
    assert sent["code"] != first["code"]
    (old,) = sent["replaced"]
    assert old["transfer_id"] == first["transfer_id"]
    assert old["reason"].endswith("; the trauma center had already redeemed it")
    assert _state(relay, first["transfer_id"])[0] == "delivered"
    relay.authorize(sent)
    relay.redeem(sent["code"], workdir=tmp_path, out=tmp_path / "again").ok()


def test_other_files_of_a_study_already_sent_replace_it_only_when_asked(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 3, seed=33)
    first = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    # The study is exported again from the PACS with one more slice.
    extra = make_ct_study(tmp_path / "pacs", 4, seed=33)[-1]
    shutil.copyfile(extra, tmp_path / "study" / extra.name)
    made = _transfers(relay)

    refused = relay.push([tmp_path / "study"], workdir=tmp_path).failed()

    assert f"Transfer {first['transfer_id']} already carries this patient's study to County " in (
        refused.message
    )
    assert f"its code {first['code']} still works. Nothing was sent." in refused.message
    assert "run the same command with --replace" in refused.message
    assert _transfers(relay) == made

    sent = relay.push([tmp_path / "study"], workdir=tmp_path, extra=["--json", "--replace"])
    replaced = sent.ok().json()
    assert (replaced["instances"], replaced["resumed"]) == (4, False)
    assert [r["transfer_id"] for r in replaced["replaced"]] == [first["transfer_id"]]
    assert _state(relay, first["transfer_id"])[0] == "revoked"
    # The old code, maybe already on the patient's sheet, opens nothing.
    old = relay.redeem(first["code"], workdir=tmp_path, out=tmp_path / "old").failed()
    assert "not accepted" in old.message


def test_break_glass_is_added_to_the_transfer_already_sent(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 3, seed=34)
    state = tmp_path / "er-state"
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    made = _transfers(relay)
    mark = relay.log_file.stat().st_size

    glass = _break_glass(
        relay, pushed["transfer_id"], state, "--reason", REASON, "--clinician", CLINICIAN
    ).ok()
    again = _break_glass(
        relay, pushed["transfer_id"], state, "--reason", REASON, "--clinician", CLINICIAN
    ).ok()

    assert f"Transfer {pushed['transfer_id']} is now authorized by BREAK-GLASS" in glass.stdout
    assert f"Code: {pushed['code']} (unchanged: the sheet with the patient still works)" in (
        glass.stdout
    )
    assert "was already authorized by BREAK-GLASS" in again.stdout
    assert _state(relay, pushed["transfer_id"]) == ("authorized", "break_glass")
    assert _transfers(relay) == made
    assert _uploads_since(relay, mark, pushed["transfer_id"]) == []
    # Nobody authorized on a phone: the code printed at the first push redeems as it is.
    redeemed = relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok().json()
    assert (redeemed["instances"], redeemed["break_glass"]) == (3, True)


def test_push_with_break_glass_adds_it_to_the_live_transfer(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 3, seed=35)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    made = _transfers(relay)
    mark = relay.log_file.stat().st_size

    glass = ["--json", "--break-glass", REASON, "--clinician", CLINICIAN]
    again = relay.push([tmp_path / "study"], workdir=tmp_path, extra=glass).ok().json()

    assert (again["transfer_id"], again["code"]) == (pushed["transfer_id"], pushed["code"])
    assert (again["resumed"], again["uploaded_before"], again["break_glass"]) == (True, True, True)
    assert _transfers(relay) == made
    assert _uploads_since(relay, mark, pushed["transfer_id"]) == []
    redeemed = relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok().json()
    assert redeemed["break_glass"] is True


def test_break_glass_is_refused_once_the_patient_authorized(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 3, seed=36)
    state = tmp_path / "er-state"
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    transfer_id = pushed["transfer_id"]

    vague = _break_glass(relay, transfer_id, state, "--reason", "urgent", "--clinician", "Dr. B")
    assert "a break-glass reason must be a sentence" in vague.failed().message
    relay.authorize(pushed)
    refused = _break_glass(
        relay, transfer_id, state, "--reason", REASON, "--clinician", CLINICIAN
    ).failed()

    assert refused.message == (
        f"trauma-relay: The patient already authorized transfer {transfer_id}, so break-glass is "
        "not needed: the trauma center can redeem its code as it is."
    )
    assert _state(relay, transfer_id) == ("authorized", "patient")
