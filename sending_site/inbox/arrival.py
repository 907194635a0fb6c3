"""What the inbox decides about one received instance: pure functions, no I/O.

`part10_header` is what goes before the received data set in the spool file (a zeroed
preamble and file meta built from the association, never copied from the sender), `describe`
reads what the index needs from a checked data set, `refusal` says whether the instance is
fit to keep, and `conflict` whether keeping it would mix patients or move an image between
studies. Refusals carry a C-STORE failure status and the reason for the log.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

# C-STORE statuses (PS3.4 B.2.3; PS3.7 C.4 for the general processing failure).
SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000

PREAMBLE = b"\x00" * 128
IMPLEMENTATION_VERSION = "TRAUMARELAY"
GROUP_LENGTH = 0x00020000
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_SHOWN_CHARACTERS = 80  # of a received value quoted in the log
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UID_MAX = 64


@dataclass(frozen=True)
class Patient:
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What must agree for two images to be the same patient's (as `collect` checks)."""
        return (self.patient_id, self.issuer, self.name, self.birth_date)


@dataclass(frozen=True)
class Arrival:
    """One received instance, as the index records it."""

    instance_id: str  # ours: the spool file's name
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient: Patient
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    modality: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    slice_thickness_mm: float | None
    size: int
    arrived_at: float
    calling_ae_title: str


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # for the log; the sender sees only the status
    # The image names another patient than its study is held under: the index records that
    # it was refused (`recording`), so that staff see the study goes without it.
    another_patient: bool = False


def shown(value: object) -> str:
    """A received value quoted for the log: repr (no control characters), cut short."""
    text = repr(str(value))
    if len(text) > _SHOWN_CHARACTERS:
        return f"{text[:_SHOWN_CHARACTERS]}... ({len(str(value))} characters)"
    return text


def part10_header(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae_title: str
) -> bytes:
    """A zeroed 128-byte preamble, `DICM` and the file meta information for a data set
    received in `transfer_syntax_uid` (PS3.10 7.1).

    The same bytes as pydicom's `write_file_meta_info(..., enforce_standard=True)` of that
    file meta (`tests/unit/test_inbox_arrival.py` compares them), built from elements pydicom
    encodes one by one: those an association's images share (every element but the SOP
    Instance UID and the group length) are encoded once per association, not once per image."""
    if not (sop_class_uid and sop_instance_uid and transfer_syntax_uid):
        raise AttributeError("Required File Meta Information elements have an empty value")
    before, after = _shared_meta(sop_class_uid, transfer_syntax_uid, source_ae_title.strip())
    instance = _encoded(DataElement(MEDIA_STORAGE_SOP_INSTANCE_UID, "UI", UID(sop_instance_uid)))
    length = _encoded(DataElement(GROUP_LENGTH, "UL", len(before) + len(instance) + len(after)))
    return PREAMBLE + b"DICM" + length + before + instance + after


def _encoded(element: DataElement) -> bytes:
    """One file meta element as PS3.10 encodes them (Explicit VR Little Endian)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_data_element(buffer, element)
    return buffer.getvalue()


@functools.lru_cache(maxsize=256)
def _shared_meta(
    sop_class_uid: str, transfer_syntax_uid: str, source_ae_title: str
) -> tuple[bytes, bytes]:
    """The encoded file meta elements before and after the Media Storage SOP Instance UID
    that `write_file_meta_info` writes for these values, set as `part10_header` set them."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    meta.SourceApplicationEntityTitle = source_ae_title
    # What `write_file_meta_info` adds under `enforce_standard`.
    meta.FileMetaInformationVersion = b"\x00\x01"
    before = b"".join(_encoded(e) for e in meta if e.tag < MEDIA_STORAGE_SOP_INSTANCE_UID)
    after = b"".join(_encoded(e) for e in meta if e.tag > MEDIA_STORAGE_SOP_INSTANCE_UID)
    return before, after


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _number(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _thickness(ds: Dataset) -> float | None:
    try:
        value = float(ds.get("SliceThickness"))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def describe(
    ds: Dataset,
    *,
    instance_id: str,
    transfer_syntax_uid: str,
    size: int,
    arrived_at: float,
    calling_ae_title: str,
) -> Arrival:
    """What the index records of a data set already checked whole (`collect.read_checked`).
    Values that do not parse (a Series Number that is not a number) become None."""
    return Arrival(
        instance_id=instance_id,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        transfer_syntax_uid=transfer_syntax_uid,
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        patient=Patient(
            patient_id=_text(ds, "PatientID"),
            issuer=_text(ds, "IssuerOfPatientID"),
            name=_text(ds, "PatientName"),
            birth_date=_text(ds, "PatientBirthDate"),
            sex=_text(ds, "PatientSex"),
        ),
        accession_number=_text(ds, "AccessionNumber"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        modality=_text(ds, "Modality"),
        series_number=_number(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        instance_number=_number(ds, "InstanceNumber"),
        slice_thickness_mm=_thickness(ds),
        size=size,
        arrived_at=arrived_at,
        calling_ae_title=calling_ae_title.strip(),
    )


def bad_uid(name: str, value: str) -> Refusal | None:
    """A refusal unless `value` is a valid UID (PS3.5 9.1: at most 64 characters, digits in
    dot-separated components without leading zeros). Checked here rather than by pydicom,
    which warns (process-wide state) on every invalid value it meets."""
    if len(value) <= _UID_MAX and _UID.fullmatch(value):
        return None
    return Refusal(CANNOT_UNDERSTAND, f"the {name} {shown(value)} is not a valid UID")


def refusal(
    arrival: Arrival, affected_sop_class: str, affected_sop_instance: str
) -> Refusal | None:
    """Why an instance must not be kept, or None: a UID that is not one, or a data set that
    is not the instance the C-STORE request announced."""
    for name, value in (
        ("request's Affected SOP Instance UID", affected_sop_instance),
        ("request's Affected SOP Class UID", affected_sop_class),
        ("data set's SOP Instance UID", arrival.sop_instance_uid),
        ("data set's SOP Class UID", arrival.sop_class_uid),
        ("data set's Study Instance UID", arrival.study_instance_uid),
        ("data set's Series Instance UID", arrival.series_instance_uid),
    ):
        refused = bad_uid(name, value)
        if refused:
            return refused
    if arrival.sop_instance_uid != affected_sop_instance:
        return Refusal(
            DOES_NOT_MATCH_SOP_CLASS,
            "its data set carries another SOP Instance UID than the request announced",
        )
    if arrival.sop_class_uid != affected_sop_class:
        return Refusal(
            DOES_NOT_MATCH_SOP_CLASS,
            "its data set carries another SOP Class UID than the request announced",
        )
    return None


def conflict(
    arrival: Arrival,
    *,
    study_patient: Patient | None,
    series_study: str | None,
    earlier_home: tuple[str, str] | None,
) -> Refusal | None:
    """Why keeping `arrival` would put an image on the wrong record, or None.

    `study_patient` is the patient the index holds the study under, `series_study` the study
    it holds the series under, `earlier_home` the (study, series) of an earlier copy of the
    same SOP instance; each None when the index has none. A copy resent into the same series
    replaces the earlier one; anything else that disagrees is refused, never merged."""
    if study_patient is not None and study_patient.identity != arrival.patient.identity:
        return Refusal(
            CANNOT_UNDERSTAND,
            "its study is already held under another patient (ID, issuer, name or birth date "
            "differ); one study carries one patient",
            another_patient=True,
        )
    if series_study is not None and series_study != arrival.study_instance_uid:
        return Refusal(CANNOT_UNDERSTAND, "its series is already held under another study")
    if earlier_home is not None and earlier_home != (
        arrival.study_instance_uid,
        arrival.series_instance_uid,
    ):
        return Refusal(
            CANNOT_UNDERSTAND, "an image with its SOP Instance UID is held under another series"
        )
    return None
