"""Acceptance, at the command line, against a real Orthanc: import reconciliation (IHE RAD
IRWF.b). Staff give the trauma center's own record number with `--local-patient-id`; the images
are filed under it, with the ER's identifiers kept in Other Patient IDs and Original Attributes,
the UIDs and pixels unchanged. A record number that belongs to someone else in the PACS holds
the study until a person has looked."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from peers.orthanc import OrthancServer

from e2e.harness import (
    CliRun,
    E2ERelay,
    listed_commands,
    pacs_address,
    run_cli,
    sop_instance_uid,
)
from sending_site.synthetic import make_ct_study

LOCAL = ["--local-patient-id", "MRN-777", "--local-issuer", "REGIONAL"]
NEW = [*LOCAL, "--new-local-patient"]


def _push(relay: E2ERelay, tmp_path: Path, files: list[Path]) -> dict[str, Any]:
    pushed = relay.push([files[0].parent], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    return pushed


def _redeem(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, code: str, *extra: str
) -> CliRun:
    args = relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs_address(orthanc))
    return run_cli(
        [*args, *extra], cwd=tmp_path, credential=relay.receiver_credential, stdin=code + "\n"
    )


def _in_pacs(orthanc: OrthancServer, folder: Path, *, seed: int, **patient: str) -> None:
    """A one-image study the trauma center already holds under MRN-777 of REGIONAL."""
    for path in make_ct_study(
        folder, 1, seed=seed, patient_id="MRN-777", issuer_of_patient_id="REGIONAL", **patient
    ):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")


def _stored(orthanc: OrthancServer, path: Path) -> pydicom.Dataset:
    orthanc_id = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
    assert orthanc_id is not None, path
    return pydicom.dcmread(BytesIO(orthanc.instance_file(orthanc_id)))


def test_a_new_patient_is_filed_under_the_local_record_number(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 3, seed=81)  # ER-12345 of ER-GENERAL, DOE^JANE
    pushed = _push(relay, tmp_path, files)

    held = _redeem(relay, orthanc, tmp_path, pushed["code"], *LOCAL).failed()
    assert "The PACS has no images for patient MRN-777 yet" in held.message
    assert "--new-local-patient" in held.message
    assert orthanc.instances() == []

    # Staff state that MRN-777 was just given to this patient: same code, same machine.
    done = _redeem(relay, orthanc, tmp_path, pushed["code"], *NEW).ok().json()

    assert done["instances"] == 3
    assert done["local_patient_id"] == "MRN-777"
    assert done["filed_under"] == {
        "patient_id": "MRN-777",
        "issuer_of_patient_id": "REGIONAL",
        "patient_name": "DOE^JANE",
        "birth_date": "19850214",
    }
    for path in files:
        original = pydicom.dcmread(path)
        ds = _stored(orthanc, path)
        assert (ds.PatientID, ds.IssuerOfPatientID, ds.PatientName) == (
            "MRN-777",
            "REGIONAL",
            "DOE^JANE",
        )
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
        )
        assert ds.PixelData == original.PixelData
        (other,) = ds.OtherPatientIDsSequence
        assert (other.PatientID, other.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
        (previous,) = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
        assert (previous.PatientID, previous.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
        assert ds.OriginalAttributesSequence[0].ReasonForTheAttributeModification == "COERCE"
        assert ds.InstanceOriginStatus == "IMPORTED"
    (patient,) = orthanc.patients()
    assert orthanc.get_json(f"/patients/{patient}")["MainDicomTags"]["PatientID"] == "MRN-777"


def test_the_local_record_number_of_the_same_patient_takes_the_pacs_demographics(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    # The trauma center already knows her as MRN-777, her name spelt its own way.
    _in_pacs(orthanc, tmp_path / "earlier", seed=82, patient_name="Doe^Jane")
    files = make_ct_study(tmp_path / "study", 2, seed=83)
    pushed = _push(relay, tmp_path, files)

    done = _redeem(relay, orthanc, tmp_path, pushed["code"], *LOCAL).ok().json()

    # The result names the record it was filed under, with the PACS's own spelling.
    assert done["filed_under"]["patient_id"] == "MRN-777"
    assert done["filed_under"]["patient_name"] == "Doe^Jane"
    assert len(orthanc.patients()) == 1
    for path in files:
        ds = _stored(orthanc, path)
        assert (ds.PatientID, ds.PatientName) == ("MRN-777", "Doe^Jane")


def test_a_record_number_of_another_patient_is_held_until_reviewed(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    # A mistyped record number: MRN-777 is someone else in this PACS.
    _in_pacs(
        orthanc,
        tmp_path / "someone",
        seed=84,
        patient_name="ROE^RICHARD",
        patient_birth_date="19600101",
    )
    files = make_ct_study(tmp_path / "study", 2, seed=85)
    pushed = _push(relay, tmp_path, files)

    run = _redeem(relay, orthanc, tmp_path, pushed["code"], *LOCAL).failed()

    assert "patient MRN-777 has another name than the transferred patient" in run.message
    assert "Nothing was stored" in run.message
    assert "ROE, RICHARD" in run.message  # the PACS's side, beside the ER's
    assert "1960-01-01" in run.message
    assert len(orthanc.instances()) == 1
    commands = listed_commands(run.stderr)
    assert all("--skip-identity-check" not in argv for argv in commands)  # it would not help

    # A person checked: the same patient under a trauma alias. The printed command continues.
    (argv,) = [argv for argv in commands if "--confirm-local-record" in argv]
    assert argv[argv.index("--local-patient-id") + 1] == "MRN-777"
    again = run_cli(
        [*argv[1:], "--json"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
    ).ok()
    assert again.json()["instances"] == 2
    for path in files:
        ds = _stored(orthanc, path)
        assert (ds.PatientID, ds.PatientName, ds.PatientBirthDate) == (
            "MRN-777",
            "ROE^RICHARD",
            "19600101",
        )


def test_without_a_local_record_number_nothing_is_coerced(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 1, seed=86)
    pushed = _push(relay, tmp_path, files)
    _redeem(relay, orthanc, tmp_path, pushed["code"]).ok()
    ds = _stored(orthanc, files[0])
    assert ds.PatientID == "ER-12345"
    assert "OriginalAttributesSequence" not in ds
    assert pydicom.dcmread(files[0]).PixelData == ds.PixelData


def test_a_local_record_number_needs_a_pacs(relay: E2ERelay, tmp_path: Path) -> None:
    args = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "out")
    run = run_cli(
        [*args, "--local-patient-id", "MRN-777"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin="0000-0000-0000-0000\n",
    ).failed()
    assert "goes with --pacs" in run.message
    assert not (tmp_path / "out").exists()


def test_a_wildcard_record_number_is_refused_before_the_code_is_spent(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 1, seed=87)
    pushed = _push(relay, tmp_path, files)

    run = _redeem(relay, orthanc, tmp_path, pushed["code"], "--local-patient-id", "MRN*").failed()

    assert "not one a PACS can hold" in run.message
    assert orthanc.instances() == []
    _redeem(relay, orthanc, tmp_path, pushed["code"], *NEW).ok()  # the code still works
    assert _stored(orthanc, files[0]).PatientID == "MRN-777"


def test_confirming_the_local_record_still_holds_a_study_filed_under_someone_else(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Confirming one hold waives that one: the study's UIDs are still checked."""
    alias = make_ct_study(
        tmp_path / "alias", 1, seed=88, patient_id="MRN-777", patient_name="TRAUMA^ALPHA"
    )
    files = make_ct_study(tmp_path / "study", 2, seed=89)
    (tmp_path / "elsewhere").mkdir()
    for path in [*alias, *files[:1]]:
        ds = pydicom.dcmread(path)
        if path in files:  # this very study, already filed under another patient
            ds.PatientID, ds.PatientName = "X-1", "SMITH^ANN"
        ds.save_as(tmp_path / "elsewhere" / path.name)
        orthanc.post_json(
            "/instances", (tmp_path / "elsewhere" / path.name).read_bytes(), "application/dicom"
        )
    pushed = _push(relay, tmp_path, files)

    run = _redeem(
        relay, orthanc, tmp_path, pushed["code"], *LOCAL, "--confirm-local-record"
    ).failed()

    assert "already has this study (same Study Instance UID) under a different patient" in (
        run.message
    )
    assert len(orthanc.instances()) == 2
