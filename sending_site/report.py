"""A report travelling with the images: a PDF becomes an Encapsulated PDF instance (PS3.3
A.45.1) in the same study, under the same patient, in a series of its own. Pure: bytes and the
study's attributes in, a data set out; `inbox.deposit` keeps it in the spool, where it is
sealed and sent like every other instance.

The patient and study attributes are copied exactly as the study holds them (Patient ID and
its issuer, name, birth date, sex; Study Instance UID, accession number, study date and time),
so the trauma center files the report with the images and reconciles both alike.
"""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from sending_site import errors
from sending_site.inbox.records import StudyRecord

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
PDF_MIME_TYPE = "application/pdf"
MAX_REPORT_BYTES = 50 * 1024 * 1024
REPORT_SERIES_NUMBER = 9901  # after the images' series, which scanners number low
DEFAULT_TITLE = "Report from the emergency department"
_PDF_MAGIC = b"%PDF-"
_TITLE_LENGTH = 64  # Document Title is a Long String


def check_pdf(pdf: bytes) -> None:
    """Return only if `pdf` looks like a PDF (it starts with "%PDF-", as PDF files must, ISO
    32000-1 7.5.2) and is at most `MAX_REPORT_BYTES`; raises `ReportNotPdf`, `ReportTooLarge`."""
    if not pdf.startswith(_PDF_MAGIC):
        raise errors.ReportNotPdf()
    if len(pdf) > MAX_REPORT_BYTES:
        megabytes = MAX_REPORT_BYTES // (1024 * 1024)
        raise errors.ReportTooLarge(
            f"That PDF is {len(pdf) / 1e6:.0f} MB; a report travelling with the images may be "
            f"at most {megabytes} MB. Save a smaller PDF of the report (fewer pictures, or "
            "lower resolution) and add it again."
        )


def encapsulated_pdf(
    pdf: bytes, study: StudyRecord, now: datetime, title: str = DEFAULT_TITLE
) -> Dataset:
    """The Encapsulated PDF instance of `pdf` in `study`, made at `now` (local time), with
    fresh Series and SOP Instance UIDs. Raises `ReportNotPdf` or `ReportTooLarge`."""
    check_pdf(pdf)
    patient = study.patient
    date, time_of_day = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names as the images gave them
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time_of_day
    # Patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    # General Study
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    # Encapsulated Document Series, SC Equipment
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = "Report"
    ds.ConversionType = "WSD"  # made at a workstation
    ds.Manufacturer = ""
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time_of_day
    ds.AcquisitionDateTime = date + time_of_day
    ds.BurnedInAnnotation = "YES"  # a report names the patient
    ds.DocumentTitle = " ".join(title.split())[:_TITLE_LENGTH]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME_TYPE
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf)  # the PDF's own length, before the pad byte
    return ds
