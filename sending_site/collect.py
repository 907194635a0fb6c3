"""Gather the instances of a study from files, folders and DICOMDIR media, validating each.

Every file is parsed with pydicom (never by hand). Non-DICOM and empty files are skipped and
listed, not fatal; a damaged DICOM file stops the collection with the reason, since a study
missing an image must not travel as if complete. Nothing here touches the network.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.fileset import FileSet

from sending_site import errors

UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
SEQUENCE_DELIMITER = {
    True: b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # little endian
    False: b"\xff\xfe\xe0\xdd\x00\x00\x00\x00",  # big endian
}


@dataclass(frozen=True)
class Instance:
    """One DICOM file to send, with what the manifest and the summary need."""

    path: Path
    size: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_description: str
    accession_number: str
    modality: str


@dataclass
class Collection:
    instances: list[Instance] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why)


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value) if value is not None else ""


def _truncation(path: Path, ds: pydicom.Dataset) -> str | None:
    """Why this parsed file is incomplete, or None. pydicom reads a cut-off file without
    complaint, so check what it read against what the elements declared."""
    for elem in ds.elements():
        if (
            isinstance(elem, RawDataElement)
            and elem.value is not None
            and elem.length != UNDEFINED_LENGTH
            and len(elem.value) != elem.length
        ):
            return f"the file is cut off inside element {elem.tag}"
    if "Rows" in ds and not any(
        k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    ):
        return "the file is cut off before its pixel data"
    pixels = ds.get_item(PIXEL_DATA)
    if isinstance(pixels, RawDataElement) and pixels.length == UNDEFINED_LENGTH:
        # Encapsulated pixel data must be followed by a complete sequence delimiter.
        end = pixels.value_tell + len(pixels.value or b"")
        with path.open("rb") as f:
            f.seek(end)
            tail = f.read(8)
        if tail != SEQUENCE_DELIMITER[bool(ds.original_encoding[1])]:
            return "the file is cut off inside its compressed pixel data"
    return None


def read_instance(path: Path) -> Instance:
    """Parse and validate one Part 10 file. Raises `InvalidDicomError` or `ValueError`."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty")
    with warnings.catch_warnings(record=True) as caught:  # reasons here, not noise on stderr
        warnings.simplefilter("always")
        ds = pydicom.dcmread(path)
    for warning in caught:
        if "End of file reached" in str(warning.message):
            # pydicom keeps what it read of a cut undefined-length element, and may drop more.
            raise ValueError("the file is cut off before its end")
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta or "MediaStorageSOPInstanceUID" not in meta:
        raise ValueError("the file has no DICOM file meta information")
    why = _truncation(path, ds)
    if why:
        raise ValueError(why)
    sop_instance = _text(ds, "SOPInstanceUID") or str(meta.MediaStorageSOPInstanceUID)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not _text(ds, keyword):
            raise ValueError(f"the file has no {keyword}")
    return Instance(
        path=path,
        size=size,
        sop_instance_uid=sop_instance,
        sop_class_uid=_text(ds, "SOPClassUID") or str(meta.MediaStorageSOPClassUID),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        transfer_syntax_uid=str(meta.TransferSyntaxUID),
        patient_id=_text(ds, "PatientID"),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID"),
        patient_name=_text(ds, "PatientName"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        patient_sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        modality=_text(ds, "Modality"),
    )


def _dicomdir_files(path: Path) -> list[Path]:
    """The files a DICOMDIR names. pydicom >= 3.0.2 refuses file IDs outside the media root
    (CVE-2026-32711); we check again, so an older or patched copy cannot walk out."""
    root = path.parent.resolve()
    try:
        directory = pydicom.dcmread(path)
        try:
            fileset = FileSet(directory)
        except PermissionError as e:  # pydicom >= 3.0.2: a file ID outside the root
            raise errors.UnsafeMedia(
                f"The DICOMDIR at {path} points outside its disc; nothing on that disc was read."
            ) from e
    except (InvalidDicomError, ValueError, KeyError, AttributeError, OSError) as e:
        raise errors.UnsafeMedia(
            f"The DICOMDIR at {path} could not be used ({e}); nothing on that disc was read."
        ) from e
    files = []
    for instance in fileset:
        target = Path(instance.path).resolve()
        if not target.is_relative_to(root):
            raise errors.UnsafeMedia(
                f"The DICOMDIR at {path} points outside its disc; nothing on that disc was read."
            )
        files.append(target)
    return files


def _candidates(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for given in paths:
        if given.is_dir():
            dicomdir = given / "DICOMDIR"
            if dicomdir.is_file():
                found.extend(_dicomdir_files(dicomdir))
                continue
            for folder, dirs, names in os.walk(given):
                dirs.sort()
                for name in sorted(names):
                    found.append(Path(folder) / name)
        elif given.name.upper() == "DICOMDIR":
            found.extend(_dicomdir_files(given))
        elif given.exists():
            found.append(given)
        else:
            raise errors.NoDicomFound(f"{given} does not exist.")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def collect(paths: list[Path]) -> Collection:
    """Every valid instance under `paths` (one per SOP Instance UID), plus what was skipped.

    Raises `DamagedDicom` if any DICOM file is damaged, `NoDicomFound` if nothing valid
    remains and `MixedPatients` if the instances do not all belong to one patient."""
    result = Collection()
    damaged: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for path in _candidates(paths):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            if path.stat().st_size == 0:
                result.skipped.append((path, "an empty file"))
                continue
            instance = read_instance(path)
        except InvalidDicomError:
            result.skipped.append((path, "not a DICOM file"))
            continue
        except (ValueError, EOFError, OSError, KeyError, TypeError, AttributeError) as e:
            damaged.append((path, str(e)))
            continue
        if instance.sop_instance_uid in seen:
            result.skipped.append((path, "the same image appears twice; sent once"))
            continue
        seen.add(instance.sop_instance_uid)
        result.instances.append(instance)
    if damaged:
        listing = "; ".join(f"{p.name}: {why}" for p, why in damaged[:10])
        raise errors.DamagedDicom(
            f"{len(damaged)} DICOM file(s) are damaged ({listing}). Nothing was sent: copy the "
            "study again from the PACS or the disc, and try again."
        )
    if not result.instances:
        listing = "; ".join(f"{p.name}: {why}" for p, why in result.skipped[:10])
        raise errors.NoDicomFound(
            "No DICOM images were found in what you gave"
            + (f" ({listing})." if listing else ".")
            + " Check the folder or disc and try again."
        )
    patients = {(i.patient_id, i.issuer_of_patient_id, i.patient_name) for i in result.instances}
    if len(patients) > 1:
        raise errors.MixedPatients(
            f"These files belong to {len(patients)} different patients. One transfer carries "
            "one patient: send each patient's images separately."
        )
    return result
