"""The report as an Encapsulated PDF instance (`sending_site.report`): the study's patient and
study attributes exactly, fresh series and instance UIDs, the PDF bytes unchanged; what is not
a PDF, or too large, is refused with the sentence staff see."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime

import pydicom
import pytest
from pydicom import config
from pydicom.uid import UID

from sending_site import errors, report
from sending_site.inbox.arrival import Patient
from sending_site.inbox.deposit import part10
from sending_site.inbox.records import StudyRecord

STUDY = StudyRecord(
    study_instance_uid="1.2.826.0.1.3680043.10.1.7",
    patient=Patient("ER-1", "ER-GENERAL", "MÜLLER^JANE", "19850214", "F"),
    accession_number="A000123",
    study_date="20261203",
    study_time="031500",
    description="CT TRAUMA",
    first_arrival=0.0,
    last_arrival=0.0,
    series=(),
)
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n!"  # odd length: padded on the wire
NOW = datetime(2026, 12, 3, 4, 5, 6)


@pytest.fixture
def strict_pydicom() -> Iterator[None]:
    """pydicom raising on every value it would only warn about, writing and reading."""
    before = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.RAISE
    config.settings.writing_validation_mode = config.RAISE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = before


@pytest.mark.usefixtures("strict_pydicom")
def test_the_report_is_an_encapsulated_pdf_of_the_same_patient_and_study() -> None:
    written = part10(report.encapsulated_pdf(PDF, STUDY, NOW, "Trauma  CT\nreport"))
    ds = pydicom.dcmread(io.BytesIO(written))
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert (
        ds.PatientID,
        ds.IssuerOfPatientID,
        str(ds.PatientName),
        ds.PatientBirthDate,
        ds.PatientSex,
    ) == ("ER-1", "ER-GENERAL", "MÜLLER^JANE", "19850214", "F")
    assert (
        ds.StudyInstanceUID,
        ds.AccessionNumber,
        ds.StudyDate,
        ds.StudyTime,
        ds.StudyDescription,
    ) == (STUDY.study_instance_uid, "A000123", "20261203", "031500", "CT TRAUMA")
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocumentLength == len(PDF)
    assert ds.EncapsulatedDocument[: len(PDF)] == PDF
    assert ds.EncapsulatedDocument[len(PDF) :] in (b"", b"\x00")
    assert ds.DocumentTitle == "Trauma CT report"
    assert (ds.Modality, ds.ContentDate, ds.ContentTime) == ("DOC", "20261203", "040506")
    for uid in (ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert UID(uid).is_valid
        assert uid != STUDY.study_instance_uid


def test_each_report_gets_its_own_series_and_instance_uids() -> None:
    one = report.encapsulated_pdf(PDF, STUDY, NOW)
    two = report.encapsulated_pdf(PDF, STUDY, NOW)
    assert one.SOPInstanceUID != two.SOPInstanceUID
    assert one.SeriesInstanceUID != two.SeriesInstanceUID


@pytest.mark.parametrize("data", [b"", b"GIF89a...", b"<html>%PDF-1.4", b"%PD"])
def test_what_is_not_a_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(errors.ReportNotPdf, match=r"not a PDF.*Save the report as a PDF"):
        report.encapsulated_pdf(data, STUDY, NOW)


def test_a_pdf_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "MAX_REPORT_BYTES", 1024 * 1024)
    big = b"%PDF-1.4\n" + b"0" * (1024 * 1024)
    with pytest.raises(errors.ReportTooLarge, match=r"at most 1 MB\. Save a smaller PDF"):
        report.encapsulated_pdf(big, STUDY, NOW)
    report.check_pdf(big[: 1024 * 1024])  # at the limit: taken
