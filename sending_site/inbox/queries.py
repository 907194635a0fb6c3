"""What the inbox asks the hospital PACS and how it reads the answers: pure, no I/O.

Study Root C-FIND (PS3.4 C.6.2) by medical record number, by accession number, or by name and
birth date together; a SERIES-level C-FIND for the PACS's count of images per series
(Number of Series Related Instances); a STUDY-level C-MOVE identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from sending_site.inbox.errors import QueryInvalid

# Characters that make a C-FIND key a pattern (PS3.4 C.2.2.2.4) or break a value (PS3.5 6.2).
_SPECIAL = set("*?\\")
_BIRTH_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
# The return keys of each level, by the field of the answer they fill (counts are numbers).
_STUDY_ANSWER = {
    "study_instance_uid": "StudyInstanceUID",
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "issuer_of_patient_id": "IssuerOfPatientID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "study_description": "StudyDescription",
    "modalities": "ModalitiesInStudy",
    "series": "NumberOfStudyRelatedSeries",
    "instances": "NumberOfStudyRelatedInstances",
}
_SERIES_ANSWER = {
    "series_instance_uid": "SeriesInstanceUID",
    "series_number": "SeriesNumber",
    "modality": "Modality",
    "description": "SeriesDescription",
    "instances": "NumberOfSeriesRelatedInstances",
}
_NUMBERS = {
    "SeriesNumber",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
}


def _plain(what: str, value: str) -> str:
    value = value.strip()
    if not value or _SPECIAL & set(value):
        raise QueryInvalid(f"Type the whole {what}, without * ? or \\.")
    return value


def _dicom_name(name: str) -> str:
    """ "Doe, Jane" or "DOE^JANE" as a PN value ("Doe^Jane")."""
    name = _plain("name", name)
    if "^" not in name and "," in name:
        family, _, given = name.partition(",")
        name = f"{family.strip()}^{given.strip()}"
    return name


def _dicom_date(birth_date: str) -> str:
    match = _BIRTH_DATE.fullmatch(birth_date.strip())
    if not match:
        raise QueryInvalid(
            f"Write the date of birth as YYYY-MM-DD (for example 1985-02-14), not {birth_date!r}."
        )
    return "".join(match.groups())


@dataclass(frozen=True)
class StudyQuery:
    """One way to find a patient's studies; build it with a `by_*` constructor."""

    patient_id: str = ""
    accession_number: str = ""
    patient_name: str = ""
    birth_date: str = ""

    @classmethod
    def by_patient_id(cls, medical_record_number: str) -> StudyQuery:
        return cls(patient_id=_plain("medical record number", medical_record_number))

    @classmethod
    def by_accession(cls, accession_number: str) -> StudyQuery:
        return cls(accession_number=_plain("accession number", accession_number))

    @classmethod
    def by_name_and_birth_date(cls, name: str, birth_date: str) -> StudyQuery:
        return cls(patient_name=_dicom_name(name), birth_date=_dicom_date(birth_date))

    def identifier(self) -> Dataset:
        """The STUDY-level C-FIND identifier: the matching keys set, every return key empty.
        A name matches with anything after it ("Doe^Jane" finds "Doe^Jane^M")."""
        if not (self.patient_id or self.accession_number or self.patient_name):
            raise QueryInvalid()
        ds = Dataset()
        if not (self.patient_name + self.patient_id + self.accession_number).isascii():
            ds.SpecificCharacterSet = "ISO_IR 192"
        ds.QueryRetrieveLevel = "STUDY"
        for keyword in _STUDY_ANSWER.values():
            setattr(ds, keyword, "")
        ds.PatientID = self.patient_id
        ds.AccessionNumber = self.accession_number
        ds.PatientName = f"{self.patient_name}*" if self.patient_name else ""
        ds.PatientBirthDate = self.birth_date
        return ds


def _value(ds: Dataset, keyword: str) -> str | int | None:
    """An answer's value as text ("" if absent), or for a count a number (None if absent or
    not a number): PACS answers are read tolerantly."""
    value = ds.get(keyword)
    if keyword in _NUMBERS:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if value is None:
        return ""
    if keyword == "ModalitiesInStudy" and not isinstance(value, str):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _answer(ds: Dataset, fields: dict[str, str]) -> dict[str, Any]:
    return {field: _value(ds, keyword) for field, keyword in fields.items()}


@dataclass(frozen=True)
class StudyMatch:
    """A study the PACS holds, as its C-FIND answer describes it."""

    study_instance_uid: str
    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    patient_birth_date: str
    patient_sex: str
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    modalities: str  # as the PACS gives them, e.g. "CT\\SR"
    series: int | None
    instances: int | None


def study_match(ds: Dataset) -> StudyMatch:
    """Read one STUDY-level answer."""
    return StudyMatch(**_answer(ds, _STUDY_ANSWER))


def series_identifier(study_instance_uid: str) -> Dataset:
    """The SERIES-level C-FIND identifier asking for every series of a study and its count."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    for keyword in _SERIES_ANSWER.values():
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = study_instance_uid
    return ds


@dataclass(frozen=True)
class PacsSeries:
    """A series the PACS holds, with its image count (None if it gave none)."""

    series_instance_uid: str
    series_number: int | None
    modality: str
    description: str
    instances: int | None


def pacs_series(ds: Dataset) -> PacsSeries:
    """Read one SERIES-level answer."""
    return PacsSeries(**_answer(ds, _SERIES_ANSWER))


def move_identifier(study_instance_uid: str) -> Dataset:
    """The STUDY-level C-MOVE identifier for one study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_instance_uid
    return ds
