"""The study preview staff read before the images go into the PACS: who the patient is, what the
study is, who sent it and how it was authorized. Pure: a verified `StudySummary` in, lines out.
"""

from __future__ import annotations

from transfer_codes.manifest import StudySummary

UNKNOWN = "not given"
_SEX = {"F": "female", "M": "male", "O": "other"}


def person_name(pn: str) -> str:
    """A DICOM person name as staff read it: "DOE^JANE^^DR" -> "DOE, JANE"; the first
    (alphabetic) group only."""
    parts = pn.split("=", 1)[0].split("^")
    family, given = parts[0].strip(), " ".join(p.strip() for p in parts[1:3] if p.strip())
    return ", ".join(p for p in (family, given) if p) or UNKNOWN


def date(da: str) -> str:
    """A DICOM date "20250101" as "2025-01-01"; anything else as given."""
    da = da.strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return da or UNKNOWN


def sex_word(cs: str) -> str:
    """A DICOM Patient's Sex "F" as "female"; anything else as given."""
    return _SEX.get(cs.strip().upper(), cs.strip() or UNKNOWN)


def describe(summary: StudySummary) -> list[str]:
    """The preview, a line each: patient, study, sender (break-glass marked), and what to do."""
    issuer = f", issuer {summary.issuer_of_patient_id}" if summary.issuer_of_patient_id else ""
    sex = _SEX.get(summary.patient_sex.strip().upper(), summary.patient_sex.strip() or UNKNOWN)
    study = summary.study_description.strip() or "no description"
    modalities = "/".join(summary.modalities) or "modality not given"
    images = f"{summary.instance_count} images" if summary.instance_count else "images"
    series = f"{summary.series_count} series, " if summary.series_count else ""
    accession = f", accession {summary.accession_number}" if summary.accession_number else ""
    authorized = (
        "BREAK-GLASS: authorized by a clinician, not by the patient or family"
        if summary.break_glass
        else "authorized by the patient or family"
    )
    return [
        f"Patient:  {person_name(summary.patient_name)}, born {date(summary.patient_birth_date)}"
        f", {sex} (ER patient ID {summary.patient_id or UNKNOWN}{issuer})",
        f"Study:    {study}, {modalities}, {date(summary.study_date)}{accession}"
        f" ({series}{images})",
        f"Sent by:  {summary.sending_site or UNKNOWN}; {authorized}",
        "Check this against the patient in front of you.",
    ]
