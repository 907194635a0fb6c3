"""Acceptance: the relay is blind. After a whole transfer through the real relay process, no
byte string of the patient's name, the patient ID or any UID of the study occurs in any file
of its data directory (database, write-ahead log, objects) or in its log."""

from __future__ import annotations

import base64
import urllib.request
from pathlib import Path

import pydicom
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from e2e.harness import E2ERelay, assert_identical_in_scp, pacs_address, run_cli
from sending_site.synthetic import make_ct_study

# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
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


# Canaries in every place a study carries words about the patient: name, ID, the study's and
# series' descriptions, and the text of a PDF report encapsulated in the study.
CANARIES = {
    "PatientName": "CANARYSURNAME^CANARYGIVEN",
    "PatientID": "CANARYMRN90817",
    "StudyDescription": "CANARY STUDY OF THE LEFT KNEE",
    "SeriesDescription": "CANARY SERIES AXIAL",
}
REPORT_CANARY = "CANARY REPORT FINDINGS FRACTURE"


def _pdf(text: str) -> bytes:
    """A small PDF whose one page shows `text` (as a PDF content stream holds it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    return (
        b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
        b"3 0 obj <</Type /Page /Parent 2 0 R /Contents 4 0 R>> endobj\n"
        b"4 0 obj <</Length " + str(len(stream)).encode() + b">> stream\n" + stream + b"\n"
        b"endstream endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
    )


def _report(image: Path, out: Path) -> Path:
    """An Encapsulated PDF instance in the image's study, under its patient."""
    images = pydicom.dcmread(image, stop_before_pixels=True)
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = generate_uid()
    for keyword in (
        *("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"),
        *("StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription"),
    ):
        setattr(ds, keyword, images[keyword].value)
    ds.AccessionNumber = images.get("AccessionNumber", "")
    ds.ReferringPhysicianName, ds.StudyID = "", ""
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "DOC", generate_uid(), 9901
    ds.ConversionType, ds.InstanceNumber, ds.BurnedInAnnotation = "WSD", 1, "YES"
    ds.ContentDate, ds.ContentTime = images.StudyDate, images.StudyTime
    ds.AcquisitionDateTime = images.StudyDate + images.StudyTime
    ds.DocumentTitle, ds.ConceptNameCodeSequence = "Report", []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = _pdf(REPORT_CANARY)
    ds.EncapsulatedDocument, ds.EncapsulatedDocumentLength = pdf, len(pdf)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(out, enforce_file_format=True)
    return out


def _forms(text: str) -> dict[str, bytes]:
    """The byte strings `text` could leave behind: UTF-8 (and US-ASCII, as DICOM writes these),
    UTF-16 in both orders, hex, and base64 at each of the three alignments (only the characters
    that depend on `text` alone)."""
    raw = text.encode()
    forms = {
        "utf-8": raw,
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
        "hex": raw.hex().encode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        forms[f"base64+{shift}"] = encoded[-(-8 * shift // 6) : -4]
    return forms


def _needles(study: list[Path]) -> dict[str, bytes]:
    """Every form of every canary, and each value exactly as the DICOM files encode it."""
    needles = {
        f"{where} ({form})": needle
        for where, text in [*CANARIES.items(), ("report", REPORT_CANARY)]
        for form, needle in _forms(text).items()
    }
    for path in study:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in [k for k in CANARIES if k in ds]:  # the report has no series' words
            value = ds.get_item(keyword).value  # raw: the value as written, padding and all
            assert isinstance(value, bytes)
            needles[f"{keyword} (as encoded in {path.name})"] = value
    return needles


def _found(places: dict[str, bytes], needles: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, data in places.items()
        for name, needle in needles.items()
        if needle in data
    ]


def test_canaries_in_names_descriptions_and_report_reach_no_data_log_metric_or_export(
    tmp_path: Path,
) -> None:
    relay = E2ERelay(
        tmp_path / "relay", relay_args=["--log-file", str(tmp_path / "relay-file.log")]
    )
    relay.start()
    try:
        study = tmp_path / "study"
        files = make_ct_study(
            study,
            4,
            seed=47,
            patient_name=CANARIES["PatientName"],
            patient_id=CANARIES["PatientID"],
        )
        for path in files:
            ds = pydicom.dcmread(path)
            ds.StudyDescription = CANARIES["StudyDescription"]
            ds.SeriesDescription = CANARIES["SeriesDescription"]
            ds.save_as(path)
        files.append(_report(files[0], study / "REPORT.dcm"))
        needles = _needles(files)

        # The positive control: each canary is there to be found in what the ER sends.
        sent = {p.name: p.read_bytes() for p in files}
        for where, text in [*CANARIES.items(), ("report", REPORT_CANARY)]:
            assert any(text.encode() in data for data in sent.values()), where
        assert _found({"the report": sent["REPORT.dcm"]}, {"r": REPORT_CANARY.encode()})
        assert _found(
            {"an export of it": base64.b64encode(b"xy" + sent["REPORT.dcm"])},
            {k: v for k, v in needles.items() if k.startswith("report (base64")},
        )

        pushed, redeemed = relay.send([study], workdir=tmp_path / "sites")
        assert redeemed["instances"] == len(files)
        received = {
            p.name: p.read_bytes() for p in (tmp_path / "sites" / "out").rglob("*") if p.is_file()
        }
        # Another positive control: what the trauma center stored holds every canary again.
        arrived = _found({"the trauma center": b"".join(received.values())}, needles)
        assert {found.split(" (")[0] for found in arrived} == {*CANARIES, "report"}

        with _OPENER.open(relay.url + "/metrics", timeout=30) as answer:
            metrics = answer.read()
        assert b"trauma_relay" in metrics
        exports = {}
        for form in ("jsonl", "dicom"):
            out = tmp_path / f"audit.{form}"
            args = ["audit", "export", "--data", str(relay.data_dir), "--format", form]
            run_cli([*args, "--out", str(out)], cwd=tmp_path).ok()
            exports[f"the {form} audit export"] = out.read_bytes()
        assert pushed["transfer_id"].encode() in exports["the jsonl audit export"]

        def places() -> dict[str, bytes]:
            found = {
                str(p.relative_to(relay.root)): p.read_bytes()
                for p in relay.data_dir.rglob("*")
                if p.is_file()
            }
            assert any(name.endswith("relay.sqlite3-wal") for name in found)  # still running
            return {
                **found,
                "the relay's output": relay.log_file.read_bytes(),
                "its --log-file": (tmp_path / "relay-file.log").read_bytes(),
                "/metrics": metrics,
                **exports,
            }

        running = places()
        assert any(name.endswith(".sealed") for name in running)
        assert pushed["transfer_id"].encode() in running["its --log-file"]  # it did log
        assert _found(running, needles) == []
    finally:
        relay.stop()
    stopped = {
        str(p.relative_to(relay.root)): p.read_bytes()
        for p in relay.data_dir.rglob("*")
        if p.is_file()
    }
    assert _found(stopped, needles) == []
