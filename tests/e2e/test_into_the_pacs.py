"""Acceptance, through the real commands: into a real Orthanc over C-STORE with several
associations (`--associations`), and into Orthanc's DICOMweb plugin over STOW-RS (`--stow`),
each checked through Orthanc's REST API: every instance, the coerced identity
(`--local-patient-id`) with its provenance, UIDs and pixels unchanged. The delivery receipt
says how many images were decompressed and whether the study was reconciled, and
`trauma-relay transfers` at the ER shows it."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from peers.orthanc import OrthancServer
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless

from e2e import harness
from e2e.harness import CliRun, E2ERelay, pacs_address, run_cli, sop_instance_uid
from sending_site.synthetic import make_ct_study

LOCAL = ["--local-patient-id", "MRN-777", "--local-issuer", "REGIONAL", "--new-local-patient"]
IMAGES = 12


def _redeem(relay: E2ERelay, tmp_path: Path, code: str, pacs: str, *extra: str) -> CliRun:
    args = relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs)
    return run_cli(
        [*args, *extra], cwd=tmp_path, credential=relay.receiver_credential, stdin=code + "\n"
    )


def _transfers(relay: E2ERelay, tmp_path: Path, *extra: str) -> CliRun:
    return relay.as_sender(
        ["transfers", "--state", str(tmp_path / "er-state"), *extra], workdir=tmp_path
    ).ok()


def _assert_filed_under_the_local_record(orthanc: OrthancServer, files: list[Path]) -> None:
    """Every instance in Orthanc once, under MRN-777 with the ER's identity kept as provenance,
    UIDs and pixels unchanged (decoded pixels for an image that was decompressed)."""
    assert len(orthanc.instances()) == len(files)
    for path in files:
        original = pydicom.dcmread(path)
        orthanc_id = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert orthanc_id is not None, path
        ds = pydicom.dcmread(BytesIO(orthanc.instance_file(orthanc_id)))
        assert (ds.PatientID, ds.IssuerOfPatientID, ds.PatientName) == (
            "MRN-777",
            "REGIONAL",
            "DOE^JANE",
        )
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
            original.SOPInstanceUID,
        )
        if original.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID:
            assert ds.PixelData == original.PixelData
        else:
            assert np.array_equal(ds.pixel_array, original.pixel_array)
        (other,) = ds.OtherPatientIDsSequence
        assert (other.PatientID, other.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
        (provenance,) = ds.OriginalAttributesSequence
        assert provenance.ReasonForTheAttributeModification == "COERCE"
        (previous,) = provenance.ModifiedAttributesSequence
        assert (previous.PatientID, previous.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
        assert ds.InstanceOriginStatus == "IMPORTED"
    (patient,) = orthanc.patients()
    assert orthanc.get_json(f"/patients/{patient}")["MainDicomTags"]["PatientID"] == "MRN-777"


def _receipt_of(relay: E2ERelay, tmp_path: Path, transfer_id: str) -> tuple[dict[str, Any], str]:
    """The receipt as the ER's `transfers --json` has it, and the line `transfers` prints."""
    listing = _transfers(relay, tmp_path, "--json").json()["transfers"]
    (mine,) = [t for t in listing if t["transfer_id"] == transfer_id]
    lines = _transfers(relay, tmp_path).stdout.splitlines()
    shown = {lines[i].split()[0]: lines[i + 1].strip() for i in range(0, len(lines), 2)}
    return mine["receipt"], shown[transfer_id]


def test_c_store_over_several_associations_decompressing_and_reconciling(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", IMAGES, seed=91)
    ds = pydicom.dcmread(files[5])
    ds.compress(JPEG2000Lossless)  # the SOP Instance UID stays
    ds.save_as(files[5], enforce_file_format=True)
    orthanc = orthanc_factory(
        accepted_transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    )
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)

    run = _redeem(
        relay, tmp_path, pushed["code"], pacs_address(orthanc), *LOCAL, "--associations", "3"
    )

    done = run.ok().json()
    assert (done["instances"], done["decompressed"]) == (IMAGES, 1)
    assert done["filed_under"]["patient_id"] == "MRN-777"
    _assert_filed_under_the_local_record(orthanc, files)
    receipt, line = _receipt_of(relay, tmp_path, pushed["transfer_id"])
    assert (receipt["instances"], receipt["decompressed"], receipt["reconciled"]) == (
        IMAGES,
        1,
        True,
    )
    assert line.startswith("delivered ")
    assert line.endswith(
        f": {IMAGES} images into the trauma center's PACS, 1 decompressed, filed under the "
        "local record"
    )


def test_stow_rs_into_orthanc_dicomweb_with_a_basic_credential(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", IMAGES, seed=92)
    orthanc = orthanc_factory(dicomweb=True, registered_users={"trauma": "s3cret-pass"})
    credential = tmp_path / "stow-credential"
    credential.write_text("trauma:wrong\n")
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)
    stow = ["--stow", orthanc.dicomweb_url, "--stow-credential-file", str(credential)]

    # STOW-RS goes with the PACS that is asked about identity (C-FIND): before the code is read.
    alone = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "out")
    no_pacs = run_cli([*alone, *stow], cwd=tmp_path, credential=relay.receiver_credential)
    assert "--stow goes with --pacs" in no_pacs.failed().message

    # A wrong credential is found before the code is spent.
    refused = _redeem(relay, tmp_path, pushed["code"], pacs_address(orthanc), *LOCAL, *stow)
    assert "refused the credential in the credential file (HTTP 401)" in refused.failed().message
    assert "The code has not been used" in refused.message
    assert "s3cret" not in refused.stdout + refused.stderr
    assert orthanc.instances() == []

    credential.write_text("trauma:s3cret-pass\n")
    run = _redeem(relay, tmp_path, pushed["code"], pacs_address(orthanc), *LOCAL, *stow)

    done = run.ok().json()
    assert (done["instances"], done["decompressed"]) == (IMAGES, 0)
    assert done["destination"] == orthanc.dicomweb_url
    assert "s3cret" not in run.stdout + run.stderr
    _assert_filed_under_the_local_record(orthanc, files)
    receipt, line = _receipt_of(relay, tmp_path, pushed["transfer_id"])
    assert (receipt["decompressed"], receipt["reconciled"]) == (0, True)
    assert line.endswith(
        f": {IMAGES} images into the trauma center's PACS, filed under the local record"
    )


def test_a_stow_import_is_held_like_a_c_store_one_and_continues_over_stow(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    # MRN-777 is someone else in this PACS: the same identity check holds the study.
    orthanc = orthanc_factory(dicomweb=True)
    for path in make_ct_study(
        tmp_path / "someone",
        1,
        seed=93,
        patient_id="MRN-777",
        issuer_of_patient_id="REGIONAL",
        patient_name="ROE^RICHARD",
        patient_birth_date="19600101",
    ):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    files = make_ct_study(tmp_path / "study", 3, seed=94)
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)
    local = ["--local-patient-id", "MRN-777", "--local-issuer", "REGIONAL"]
    stow = ["--stow", orthanc.dicomweb_url]

    run = _redeem(relay, tmp_path, pushed["code"], pacs_address(orthanc), *local, *stow).failed()

    assert "patient MRN-777 has another name than the transferred patient" in run.message
    assert len(orthanc.instances()) == 1  # nothing was stored
    (argv,) = [
        argv for argv in harness.listed_commands(run.stderr) if "--confirm-local-record" in argv
    ]
    assert argv[argv.index("--stow") + 1] == orthanc.dicomweb_url  # continues over STOW-RS

    again = run_cli([*argv[1:], "--json"], cwd=tmp_path, credential=relay.receiver_credential)
    assert again.ok().json()["instances"] == 3
    for path in files:
        orthanc_id = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert orthanc_id is not None
        tags = orthanc.instance_tags(orthanc_id)
        assert (tags["PatientID"], tags["PatientName"]) == ("MRN-777", "ROE^RICHARD")
