"""Acceptance: the relay is blind. After a whole transfer through the real relay process, no
byte string of the patient's name, the patient ID or any UID of the study occurs in any file
of its data directory (database, write-ahead log, objects) or in its log."""

from __future__ import annotations

from pathlib import Path

import pydicom
from peers.storage_scp import RecordingStorageSCP

from e2e.harness import E2ERelay, assert_identical_in_scp, pacs_address
from sending_site.synthetic import make_ct_study

PATIENT_NAME = "BLIND^WILLOW^Q"
PATIENT_ID = "MRN-77031-ER"


def _secrets(files: list[Path]) -> set[bytes]:
    found = {PATIENT_NAME.encode(), PATIENT_ID.encode()}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == PATIENT_NAME
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            found.add(str(ds[keyword].value).encode("ascii"))
    return found


def _leaks(relay: E2ERelay, needles: set[bytes]) -> list[str]:
    files = [p for p in relay.data_dir.rglob("*") if p.is_file()] + [relay.log_file]
    return [
        f"{needle.decode()} in {path.relative_to(relay.root)}"
        for path in files
        for needle in sorted(needles)
        if needle in path.read_bytes()
    ]


def test_relay_data_and_log_hold_no_patient_name_id_or_uid(
    fresh_relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    files = make_ct_study(
        tmp_path / "study", 12, seed=31, patient_name=PATIENT_NAME, patient_id=PATIENT_ID
    )
    needles = _secrets(files)
    assert len(needles) == 2 + 1 + 1 + len(files)

    pushed, redeemed = fresh_relay.send(
        [tmp_path / "study"], workdir=tmp_path / "sites", pacs=pacs_address(storage_scp)
    )
    assert redeemed["instances"] == len(files)
    assert_identical_in_scp(storage_scp, files)

    # While the relay runs: the write-ahead log and shared memory still hold recent pages.
    data_files = {p.name for p in fresh_relay.data_dir.rglob("*") if p.is_file()}
    assert "relay.sqlite3-wal" in data_files
    assert any(p.suffix == ".sealed" for p in fresh_relay.data_dir.rglob("*"))
    assert fresh_relay.log_file.stat().st_size > 0
    assert _leaks(fresh_relay, needles) == []

    # And after it stops and checkpoints everything into the database file.
    fresh_relay.stop()
    assert _leaks(fresh_relay, needles) == []
    assert pushed["transfer_id"].encode() in fresh_relay.log_file.read_bytes()  # it did log
