"""Acceptance, at the command line, against a real Orthanc: before any C-STORE the receiving
site asks the PACS (C-FIND) whether the study would land on another patient's record. If the
ER's patient ID already belongs to someone else there, or the study's UIDs are already filed
under another patient, the study is held for a human: nothing is stored, the message shows both
sides (the PACS's name, birth date and sex beside the ER's) and what to do, the safe remedies
first, and the last printed command, with `--skip-identity-check`, stores it after review. A
PACS that refuses our queries is found before the code is spent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from peers.orthanc import OrthancServer
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt

from e2e.harness import E2ERelay, listed_commands, pacs_address, run_cli, sop_instance_uid
from sending_site.synthetic import make_ct_study

VERIFICATION = "1.2.840.10008.1.1"


def _preload(orthanc: OrthancServer, files: list[Path]) -> None:
    """What the trauma center's PACS already holds before the transfer arrives."""
    for path in files:
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    assert len(orthanc.instances()) == len(files)


def _push(relay: E2ERelay, tmp_path: Path, files: list[Path]) -> dict[str, str]:
    pushed = relay.push([files[0].parent], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    return pushed


def _none_stored(orthanc: OrthancServer, files: list[Path], before: int) -> None:
    assert len(orthanc.instances()) == before
    for path in files:
        assert orthanc.find_by_sop_instance_uid(sop_instance_uid(path)) is None, path


def test_a_patient_id_taken_by_another_patient_is_held_until_reviewed(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    _preload(orthanc, make_ct_study(tmp_path / "other", 2, seed=71, patient_name="ROE^RICHARD"))
    files = make_ct_study(tmp_path / "study", 3, seed=72)  # ER-12345, DOE^JANE
    pushed = _push(relay, tmp_path, files)

    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()

    message = run.message
    assert "The PACS already has patient ID ER-12345 under a different name" in message
    assert "held for review" in message
    assert "Nothing was stored" in message
    # Both sides, aligned: the ER's patient beside the PACS's, each difference marked.
    lines = run.stderr.splitlines()
    name = next(line for line in lines if line.lstrip().startswith("Name "))
    assert name.split() == ["Name", "DOE,", "JANE", "ROE,", "RICHARD", "<-", "differs"]
    birth = next(line for line in lines if line.lstrip().startswith("Birth date "))
    assert birth.split()[2:4] == ["1985-02-14", "1985-02-14"]
    sex = next(line for line in lines if line.lstrip().startswith("Sex "))
    assert sex.split() == ["Sex", "female", "female"]
    assert lines.index(name) < lines.index(birth) < lines.index(sex)
    assert name.index("ROE") == birth.rindex("1985") == sex.rindex("female")  # one column
    # The safe remedies first, --skip-identity-check last.
    commands = listed_commands(run.stderr)
    assert "--confirm-local-record" in commands[0]
    assert "--out" in commands[-2]
    assert "--skip-identity-check" in commands[-1]
    assert all("--skip-identity-check" not in argv for argv in commands[:-1])
    assert "Only after a person has reviewed this" in message
    _none_stored(orthanc, files, 2)

    # After review: the last printed command stores the staged study.
    argv = commands[-1]
    assert argv[:4] == ["trauma-relay", "redeem", "--resume", pushed["transfer_id"]]
    again = run_cli(
        [*argv[1:], "--json"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
    ).ok()
    assert again.json()["instances"] == len(files)
    assert len(orthanc.instances()) == 2 + len(files)
    for path in files:
        assert orthanc.find_by_sop_instance_uid(sop_instance_uid(path)) is not None, path


def test_study_uids_filed_under_another_patient_are_held(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    # The same study (same UIDs) already in the PACS under someone else. Copies with the
    # patient rewritten, not a second make_ct_study with the same seed: with pydicom 3,
    # generate_uid(prefix=None, ...) ignores its entropy sources, so those UIDs are random.
    files = make_ct_study(tmp_path / "study", 3, seed=73)
    (tmp_path / "other").mkdir()
    others = []
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "ER-99999", "ROE^RICHARD"
        ds.save_as(tmp_path / "other" / path.name)
        others.append(tmp_path / "other" / path.name)
    _preload(orthanc, others)
    pushed = _push(relay, tmp_path, files)

    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()

    assert "already has this study (same Study Instance UID) under a different patient" in (
        run.message
    )
    assert "held for review" in run.message
    assert "ER-99999" in run.message  # the patient the PACS files it under, shown to compare
    assert "ROE, RICHARD" in run.message
    assert "call the sending hospital" in run.message
    assert all("--confirm-local-record" not in argv for argv in listed_commands(run.stderr))
    assert len(orthanc.instances()) == 3
    tags = orthanc.instance_tags(orthanc.instances()[0])
    assert (tags["PatientID"], tags["PatientName"]) == ("ER-99999", "ROE^RICHARD")


def test_a_different_birth_date_for_the_patient_id_is_held(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    _preload(orthanc, make_ct_study(tmp_path / "other", 1, seed=76, patient_birth_date="19600101"))
    files = make_ct_study(tmp_path / "study", 2, seed=77)
    pushed = _push(relay, tmp_path, files)

    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()

    assert "patient ID ER-12345 with a different birth date" in run.message
    _none_stored(orthanc, files, 1)


def test_the_same_patient_already_in_the_pacs_is_delivered(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    # An earlier study of the same patient, the name written in another case with a trailing ^.
    _preload(orthanc, make_ct_study(tmp_path / "earlier", 2, seed=74, patient_name="doe^jane^"))
    files = make_ct_study(tmp_path / "study", 3, seed=75)
    pushed = _push(relay, tmp_path, files)

    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).ok()

    assert run.json()["instances"] == len(files)
    assert len(orthanc.instances()) == 2 + len(files)
    assert len(orthanc.patients()) == 1


def _attempts(relay: E2ERelay, transfer_id: str) -> tuple[str, int]:
    ((state, failed),) = relay.query(
        "SELECT state, failed_attempts FROM transfers WHERE id = ?", transfer_id
    )
    return str(state), int(failed)


def test_an_orthanc_refusing_our_queries_is_found_before_the_code_is_spent(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """Orthanc's own default: C-FIND only from the modalities it lists, and we are not one."""
    orthanc = orthanc_factory(allow_find=False)
    files = make_ct_study(tmp_path / "study", 2, seed=79)
    pushed = _push(relay, tmp_path, files)

    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()

    assert "does not answer queries (C-FIND) from this system's AE title TRAUMARELAY" in (
        run.message
    )
    assert "must allow C-FIND from AE title TRAUMARELAY" in run.message
    assert "The code has not been used" in run.message
    assert _attempts(relay, pushed["transfer_id"]) == ("authorized", 0)
    assert orthanc.instances() == []

    # Skipping the identity check skips the question too; the same code still works.
    args = relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs_address(orthanc))
    stored = run_cli(
        [*args, "--skip-identity-check"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    ).ok()
    assert stored.json()["instances"] == len(files)
    assert len(orthanc.instances()) == len(files)


def test_a_pacs_that_refuses_queries_is_found_before_the_code_is_spent(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """A PACS that takes C-ECHO and C-STORE but no C-FIND at all (no such context)."""
    files = make_ct_study(tmp_path / "study", 2, seed=78)
    pushed = _push(relay, tmp_path, files)
    ae = AE(ae_title="NOQUERY")
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    stored: list[evt.Event] = []

    def on_c_store(event: evt.Event) -> int:
        stored.append(event)
        return 0x0000

    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_c_store)]
    )
    try:
        address = f"NOQUERY@127.0.0.1:{server.server_address[1]}"
        run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=address).failed()
    finally:
        ae.shutdown()

    assert "does not answer queries (C-FIND)" in run.message
    assert "The code has not been used" in run.message
    assert _attempts(relay, pushed["transfer_id"]) == ("authorized", 0)
    assert stored == []
