"""Acceptance: a PDF report travels with the images. storescu sends a study to the agent's
DICOM inbox; `trauma-relay sender report` adds a PDF to it as an Encapsulated PDF instance of
the same patient and study; `trauma-relay push --from-inbox` sends it all; `trauma-relay redeem`
stores it in Orthanc, where the report is an instance of the study whose PDF is the one given,
byte for byte. What is not a PDF is refused with the sentence staff see, and nothing is added."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from inbox_harness import make_multi_series_study, running_inbox
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, pacs_address, run_cli

pytestmark = pytest.mark.peers

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# A small PDF of odd length, so the DICOM pad byte is exercised too.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def test_a_pdf_report_added_to_a_spooled_study_is_redeemed_into_the_pacs(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    assert len(PDF) % 2 == 1
    study = make_multi_series_study(tmp_path / "study", seed=8181)
    images = [path for files in study.values() for path in files]
    first = pydicom.dcmread(images[0], stop_before_pixels=True)
    study_uid = str(first.StudyInstanceUID)
    (tmp_path / "report.pdf").write_bytes(PDF)
    (tmp_path / "not-a-report.pdf").write_bytes(b"GIF89a" + bytes(100))
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    with running_inbox(tmp_path / "agent") as agent:
        run = storescu(agent.port, [tmp_path / "study"], called_ae_title=agent.ae_title)
        assert run.returncode == 0, run.stderr
        report = ["sender", "report", "--spool", str(agent.spool), "--study", study_uid]
        refused = run_cli([*report, str(tmp_path / "not-a-report.pdf")], cwd=tmp_path).failed()
        assert "is not a PDF" in refused.message
        assert "Save the report as a PDF and add it again." in refused.message
        assert len(agent.kept_files()) == len(images)
        added = run_cli([*report, str(tmp_path / "report.pdf")], cwd=tmp_path).ok()
        assert "Added the report report.pdf to the study" in added.stdout
        assert len(agent.kept_files()) == len(images) + 1
        assert agent.unexpected_spool_files() == []
        follow = ["--from-inbox", str(agent.spool), "--study", study_uid, "--json"]
        follow += ["--stable-after", "0"]
        pushed = relay.push([], workdir=tmp_path / "er", extra=follow).ok().json()
    assert pushed["instances"] == len(images) + 1
    relay.authorize(pushed)
    redeemed = (
        relay.redeem(pushed["code"], workdir=tmp_path / "tc", pacs=pacs_address(orthanc))
        .ok()
        .json()
    )
    assert redeemed["instances"] == len(images) + 1

    reports = [
        (orthanc_id, tags)
        for orthanc_id in orthanc.instances()
        for tags in [orthanc.instance_tags(orthanc_id)]
        if tags["SOPClassUID"] == ENCAPSULATED_PDF
    ]
    ((orthanc_id, tags),) = reports
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"):
        assert tags[keyword] == str(first.get(keyword)), keyword
    assert tags["StudyInstanceUID"] == study_uid
    assert tags["AccessionNumber"] == str(first.AccessionNumber)
    assert tags["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    assert tags["SeriesInstanceUID"] not in study
    assert len(orthanc.studies()) == 1  # filed with the images, not as a study of its own
    pdf = orthanc.get(f"/instances/{orthanc_id}/pdf")
    assert pdf[: len(PDF)] == PDF
    assert pdf[len(PDF) :] in (b"", b"\x00")  # at most the DICOM pad byte
    stored = pydicom.dcmread(io.BytesIO(orthanc.instance_file(orthanc_id)))
    assert stored.EncapsulatedDocument[: len(PDF)] == PDF
    assert stored.EncapsulatedDocumentLength == len(PDF)
    # The images went alongside, unchanged; the report is the one instance more.
    assert len(orthanc.instances()) == len(images) + 1
