"""Acceptance, at the command line, against a real Orthanc: a study the identity check held,
saved with `--out` for a person to review, is a review copy, not a delivery. The transfer stays
open (the family's phone keeps saying the images are being checked), this machine keeps what
it needs, and the printed command imports the same transfer into the PACS later."""

from __future__ import annotations

import shlex
from pathlib import Path

import pydicom
from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, listed_commands, pacs_address, run_cli, sop_instance_uid
from sending_site.synthetic import make_ct_study


def test_a_held_study_reviewed_in_a_folder_is_imported_into_the_pacs_later(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    for path in make_ct_study(tmp_path / "other", 2, seed=81, patient_name="ROE^RICHARD"):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    files = make_ct_study(tmp_path / "study", 3, seed=82)  # ER-12345, DOE^JANE: taken above
    pushed = relay.pushed_and_authorized(files[0].parent, tmp_path)
    tid = pushed["transfer_id"]

    held = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()
    assert "held for review" in held.message
    review_argv = next(argv for argv in listed_commands(held.stderr) if "--out" in argv)
    review_argv[review_argv.index("--out") + 1] = str(tmp_path / "review")
    assert relay.phone_status(pushed)["state"] == "redeemed"

    # A person looks at the images in a folder first.
    reviewed = run_cli(
        [*review_argv[1:], "--json"], cwd=tmp_path, credential=relay.receiver_credential
    ).ok()
    copy = reviewed.json()
    assert copy["review_copy"] is True
    assert copy["destination"] == str(tmp_path / "review" / tid)
    assert len(list((tmp_path / "review" / tid).rglob("IM*"))) == len(files)
    assert len(orthanc.instances()) == 2  # nothing went to the PACS

    # The family's phone still says the images are being checked, not stored.
    phone = relay.phone_status(pushed)
    assert phone["state"] == "redeemed"
    assert "checking" in phone["explanation"]
    assert phone["delivered"] is None
    assert phone["delivered_at"] is None
    (receipt,) = relay.query("SELECT receipt FROM transfers WHERE id = ?", tid)
    assert '"destination": "review"' in receipt[0]

    # The text run says what happened and the exact command to import later.
    text = run_cli(
        [a for a in review_argv[1:]], cwd=tmp_path, credential=relay.receiver_credential
    ).ok()
    assert "Nothing went to the PACS and the transfer stays open" in text.stdout
    assert copy["import_command"] in text.stdout
    import_argv = shlex.split(copy["import_command"])
    assert import_argv[:4] == ["trauma-relay", "redeem", "--resume", tid]
    assert import_argv[import_argv.index("--pacs") + 1] == pacs_address(orthanc)

    # After review: another patient; the trauma center files it under its own new record.
    imported = run_cli(
        [
            *import_argv[1:],
            "--local-patient-id",
            "TC-5555",
            "--local-issuer",
            "COUNTY",
            "--new-local-patient",
            "--json",
        ],
        cwd=tmp_path,
        credential=relay.receiver_credential,
    ).ok()
    assert imported.json()["instances"] == len(files)
    assert imported.json()["review_copy"] is False
    for path in files:
        orthanc_id = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert orthanc_id is not None, path
        assert orthanc.instance_tags(orthanc_id)["PatientID"] == "TC-5555"
    assert len(orthanc.instances()) == 2 + len(files)

    phone = relay.phone_status(pushed)
    assert phone["state"] == "delivered"
    assert "stored at the trauma center" in phone["explanation"]
    assert phone["delivered"]["destination"] == "pacs"
    # The review folder stays for staff; this machine's copy of the key is gone.
    assert pydicom.dcmread(tmp_path / "review" / tid / "DICOMDIR").DirectoryRecordSequence
    assert not list((tmp_path / "tc-state" / "receiving").glob(f"{tid}.json"))


def test_a_folder_delivery_without_a_hold_ends_the_transfer(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 2, seed=83)
    pushed = relay.pushed_and_authorized(files[0].parent, tmp_path)

    done = relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok().json()

    assert done["review_copy"] is False
    assert relay.phone_status(pushed)["delivered"]["destination"] == "folder"
