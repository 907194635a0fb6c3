"""The auditor's commands through the real CLI: `trauma-relay audit verify` and `audit export`
against a running relay's data folder after a whole transfer of a study whose patient is a
canary, which appears in neither export; then a record edited behind the relay's back is named."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pydicom

from e2e.harness import (
    CLI_TIMEOUT,
    E2ERelay,
    cli_environment,
    run_cli,
    trauma_relay_executable,
)
from sending_site.synthetic import make_ct_study

CANARY_NAME = "CANARY^PATIENT"
CANARY_ID = "CANARY-MRN-4711"


def _audit(relay: E2ERelay, *args: str) -> list[str]:
    return ["audit", *args, "--data", str(relay.data_dir)]


def _canaries(study: Path) -> set[bytes]:
    found = {CANARY_NAME.encode(), b"CANARY", CANARY_ID.encode()}
    for path in sorted(study.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == CANARY_NAME
        found |= {str(ds.StudyInstanceUID).encode(), str(ds.SOPInstanceUID).encode()}
    return found


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _codes(message: ET.Element) -> tuple[str | None, str | None]:
    """(action, event id) of one DICOM audit message."""
    action = message.find("EventIdentification/EventTypeCode")
    event = message.find("EventIdentification/EventID")
    assert action is not None
    assert event is not None
    return action.get("csd-code"), event.get("csd-code")


def test_an_auditor_verifies_and_exports_a_trail_that_holds_no_patient_data(
    fresh_relay: E2ERelay, tmp_path: Path
) -> None:
    relay = fresh_relay
    study = tmp_path / "study"
    make_ct_study(study, 3, seed=7, patient_name=CANARY_NAME, patient_id=CANARY_ID)
    canaries = _canaries(study)
    pushed, redeemed = relay.send([study], workdir=tmp_path / "sites")
    assert redeemed["instances"] == 3
    transfer_id = pushed["transfer_id"]

    # While the relay runs.
    verified = run_cli([*_audit(relay, "verify"), "--json"], cwd=tmp_path).ok().json()
    assert verified["intact"] is True
    assert verified["findings"] == []
    count = verified["records"]
    assert verified["last_seq"] == count
    said = run_cli(_audit(relay, "verify"), cwd=tmp_path).ok().stdout
    assert said.startswith(f"The audit trail is intact: {count} records")

    lines_file, xml_file = tmp_path / "audit.jsonl", tmp_path / "audit.xml"
    written = run_cli(
        [*_audit(relay, "export"), "--format", "jsonl", "--out", str(lines_file)], cwd=tmp_path
    ).ok()
    assert f"{count} audit record(s) written to {lines_file}" in written.message
    run_cli(
        [*_audit(relay, "export"), "--format", "dicom", "--out", str(xml_file)], cwd=tmp_path
    ).ok()
    to_stdout = run_cli([*_audit(relay, "export"), "--format", "jsonl"], cwd=tmp_path).ok()

    records = [json.loads(line) for line in lines_file.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, count + 1))
    assert to_stdout.stdout.splitlines()[:count] == lines_file.read_text().splitlines()
    ours = {r["action"] for r in records if r["transfer_id"] == transfer_id}
    assert {
        "transfer-created",
        "patient-authorization",
        "upload-closed",
        "redeem-attempt",
        "object-download",
    } <= ours
    assert all(len(r["hash"]) == 64 and len(r["prev_hash"]) == 64 for r in records)

    root = ET.fromstring(xml_file.read_bytes())  # noqa: S314 (the export under test)
    assert root.tag == "AuditMessages"
    assert len(root) == count
    event_ids = {
        _codes(m)
        for m in root
        if m.find(f"ParticipantObjectIdentification[@ParticipantObjectID='{transfer_id}']")
        is not None
    }
    assert {("transfer-created", "110102"), ("object-download", "110103")} <= event_ids

    leaks = [
        f"{needle.decode()} in {path.name}"
        for path in (lines_file, xml_file)
        for needle in sorted(canaries)
        if needle in path.read_bytes()
    ]
    assert leaks == []

    # A period: nothing before yesterday, nothing after tomorrow; today holds it all.
    today = datetime.datetime.now(tz=datetime.UTC).date()
    for since, until, expected in (
        (today - datetime.timedelta(days=3), today - datetime.timedelta(days=1), 0),
        (today + datetime.timedelta(days=1), today + datetime.timedelta(days=2), 0),
        (today - datetime.timedelta(days=1), today + datetime.timedelta(days=1), count),
    ):
        period = ["--since", since.isoformat(), "--until", until.isoformat()]
        run = run_cli([*_audit(relay, "export"), "--format", "jsonl", *period], cwd=tmp_path)
        assert len(run.ok().stdout.splitlines()) == expected, run.describe()

    # With the relay stopped, the auditor's commands leave its data folder as it was.
    relay.stop()
    before = _files(relay.data_dir)
    run_cli(_audit(relay, "verify"), cwd=tmp_path).ok()
    run_cli([*_audit(relay, "export"), "--format", "dicom"], cwd=tmp_path).ok()
    assert _files(relay.data_dir) == before

    # Someone with the file edits one record behind the relay's back.
    db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
    try:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute(
            "UPDATE audit SET outcome = CASE outcome WHEN 'success' THEN 'failure' "
            "ELSE 'success' END WHERE seq = 4"
        )
        db.commit()
    finally:
        db.close()
    tampered = run_cli(_audit(relay, "verify"), cwd=tmp_path)
    assert tampered.returncode == 1, tampered.describe()
    assert tampered.stdout.startswith("The audit trail has been tampered with: 1 problem(s)")
    assert "Record 4 was changed after it was written" in tampered.stdout
    found = run_cli([*_audit(relay, "verify"), "--json"], cwd=tmp_path)
    assert found.returncode == 1
    assert found.json()["findings"] == [
        {
            "seq": 4,
            "problem": "edited",
            "message": "Record 4 was changed after it was written: its hash does not cover its "
            "content.",
        }
    ]


def test_bad_input_is_refused_plainly_and_loses_nothing(
    fresh_relay: E2ERelay, tmp_path: Path
) -> None:
    nowhere = tmp_path / "not-a-relay"
    nowhere.mkdir()
    for command in (["verify"], ["export", "--format", "jsonl"]):
        run = run_cli(["audit", *command, "--data", str(nowhere)], cwd=tmp_path)
        assert run.failed().returncode == 2
        assert f"The folder {nowhere} holds no relay database" in run.message

    kept = tmp_path / "earlier.jsonl"
    kept.write_text("an earlier export\n")
    base = ["audit", "export", "--data", str(fresh_relay.data_dir), "--format"]
    run = run_cli([*base, "dicom", "--out", str(kept)], cwd=tmp_path)
    assert run.failed().returncode == 2
    assert "already exists, and an export never overwrites a file" in run.message
    assert kept.read_text() == "an earlier export\n"

    run = run_cli([*base, "jsonl", "--since", "last tuesday"], cwd=tmp_path)
    assert run.failed().returncode == 2
    assert "give a date like 2026-12-03" in run.message


def test_an_export_read_by_a_reader_that_stops_early_ends_without_a_traceback(
    tmp_path: Path,
) -> None:
    """`audit export ... | head`: the reader closes the pipe; the command stops quietly (and
    so does any other, however little it prints)."""
    data = tmp_path / "relay"
    run_cli(["site", "add", "st-mary-er", "--role", "sending", "--data", str(data), "--create"],
            cwd=tmp_path).ok()  # fmt: skip
    commands = [
        ["audit", "export", "--format", "jsonl"],
        ["audit", "export", "--format", "dicom"],
        ["site", "list"],
    ]
    for command in commands:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader has already gone
        with os.fdopen(write_end, "wb") as stdout:
            done = subprocess.run(
                [trauma_relay_executable(), *command, "--data", str(data)],
                stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                env=cli_environment(None), timeout=CLI_TIMEOUT, check=False,
            )  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr
        assert done.stderr == ""
        assert done.returncode == 1
