"""Synthetic CT studies: valid DICOM Part 10 files for tests, demos and benchmarks.

Everything is deterministic: the same arguments give byte-identical files. UIDs come from
``seed`` alone (and the instance index), not from the patient, so a test can build the same
study under two patients to exercise UID conflicts, and different seeds give unrelated studies.
"""

import math
import sys
import uuid
from array import array
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

STUDY_DESCRIPTION = "CT TRAUMA PANSCAN"

# Hounsfield units of the phantom's materials.
_AIR_HU = -1000
_SOFT_TISSUE_HU = 40
_ORGAN_HU = 60
_BONE_HU = 700

# Stored values are unsigned; RescaleIntercept maps them back to Hounsfield units.
_RESCALE_INTERCEPT = -1024
_BITS_STORED = 12

_FIELD_OF_VIEW_MM = 500.0
_MAX_MATRIX = 4096
_UID_NAMESPACE = "trauma-relay synthetic CT"


def make_ct_study(
    folder: Path,
    instances: int = 100,
    *,
    rows: int = 64,
    columns: int = 64,
    seed: int = 0,
    patient_name: str = "DOE^JANE",
    patient_id: str = "ER-12345",
    issuer_of_patient_id: str = "ER-GENERAL",
    patient_birth_date: str = "19850214",
    patient_sex: str = "F",
    accession_number: str | None = None,
    study_date: str = "20250101",
    study_time: str = "031500",
    slice_thickness_mm: float = 1.0,
    series_number: int = 1,
) -> list[Path]:
    """Write one axial CT series of ``instances`` slices into ``folder``.

    Each file is CT Image Storage in Explicit VR Little Endian with a zeroed preamble and
    16-bit MONOCHROME2 pixel data (12 bits stored, unsigned, RescaleIntercept -1024) showing a
    simple phantom: an elliptical body, a spine and a spherical organ whose cross-section
    changes from slice to slice. The field of view is 500 mm whatever the matrix size.

    Files are named by position (``CT000001.dcm``, ``CT000002.dcm``, ...), never by UID, and
    existing files with those names are overwritten. ``folder`` is created if missing.
    ``accession_number`` defaults to one derived from ``seed``. Dates are DICOM DA strings
    (``YYYYMMDD``), ``study_time`` a TM string.

    Calls with the same ``seed`` and another ``series_number`` (into another folder) add
    series to the same study: the Study Instance UID depends on the seed alone, the Series
    and SOP Instance UIDs on the series number too (series 1 keeps the UIDs it always had).

    Returns the paths in instance order. Raises ``ValueError`` if ``instances`` is not
    positive or the matrix is not between 1 and 4096 pixels on a side.
    """
    if instances < 1:
        raise ValueError(f"instances must be at least 1, not {instances}")
    for name, size in (("rows", rows), ("columns", columns)):
        if not 1 <= size <= _MAX_MATRIX:
            raise ValueError(f"{name} must be between 1 and {_MAX_MATRIX}, not {size}")
    if slice_thickness_mm <= 0:
        raise ValueError(f"slice_thickness_mm must be positive, not {slice_thickness_mm}")

    folder.mkdir(parents=True, exist_ok=True)
    study = _study_dataset(
        seed=seed,
        rows=rows,
        columns=columns,
        patient_name=patient_name,
        patient_id=patient_id,
        issuer_of_patient_id=issuer_of_patient_id,
        patient_birth_date=patient_birth_date,
        patient_sex=patient_sex,
        accession_number=accession_number or f"A{seed % 10**9:09d}",
        study_date=study_date,
        study_time=study_time,
        slice_thickness_mm=slice_thickness_mm,
        series_number=series_number,
    )
    paths = []
    for index in range(instances):
        path = folder / f"CT{index + 1:06d}.dcm"
        _write_instance(
            path,
            study,
            seed=seed,
            index=index,
            instances=instances,
            slice_thickness_mm=slice_thickness_mm,
            series_number=series_number,
        )
        paths.append(path)
    return paths


def _uid(seed: int, *parts: str) -> UID:
    """A 2.25 UID derived only from the seed and what the UID names (a name-based UUID, PS3.5
    B.2). pydicom's `generate_uid(prefix=None, ...)` ignores its entropy sources, so the UUID
    is made here from the same inputs."""
    name = "\x00".join([_UID_NAMESPACE, f"seed={seed}", *parts])
    return UID(f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}")


def _series_part(series_number: int) -> tuple[str, ...]:
    """What a series' UIDs add to the seed: nothing for series 1, so its UIDs never change."""
    return () if series_number == 1 else (f"series={series_number}",)


def _ds(value: float) -> str:
    """Format a number as a DICOM Decimal String (at most 16 characters)."""
    return f"{value:.6g}"


def _study_dataset(
    *,
    seed: int,
    rows: int,
    columns: int,
    patient_name: str,
    patient_id: str,
    issuer_of_patient_id: str,
    patient_birth_date: str,
    patient_sex: str,
    accession_number: str,
    study_date: str,
    study_time: str,
    slice_thickness_mm: float,
    series_number: int,
) -> Dataset:
    """The attributes shared by every slice of the series."""
    ds = Dataset()
    # UTF-8, so that callers can use names outside ASCII.
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = study_time
    ds.SeriesTime = study_time
    ds.AcquisitionTime = study_time
    ds.ContentTime = study_time
    ds.AccessionNumber = accession_number
    ds.Modality = "CT"
    ds.Manufacturer = "trauma-relay synthetic"
    ds.InstitutionName = "Synthetic Emergency Room"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = f"AXIAL {_ds(slice_thickness_mm)}MM"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = issuer_of_patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = patient_sex
    ds.BodyPartExamined = "WHOLEBODY"
    ds.SliceThickness = _ds(slice_thickness_mm)
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series", *_series_part(series_number))
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = _uid(seed, "frame of reference")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = [_ds(_FIELD_OF_VIEW_MM / rows), _ds(_FIELD_OF_VIEW_MM / columns)]
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = str(_RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def _write_instance(
    path: Path,
    study: Dataset,
    *,
    seed: int,
    index: int,
    instances: int,
    slice_thickness_mm: float,
    series_number: int,
) -> None:
    """Write slice ``index`` (0-based) of the series as a Part 10 file."""
    ds = Dataset()
    ds.update(study)
    sop_instance_uid = _uid(seed, "instance", *_series_part(series_number), str(index))
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceNumber = index + 1
    # Head first supine: successive slices move towards the feet, so z decreases.
    z = 0.0 - index * slice_thickness_mm  # not -0.0, which would print as "-0"
    rows, columns = int(ds.Rows), int(ds.Columns)
    ds.ImagePositionPatient = [
        _ds(-_FIELD_OF_VIEW_MM / 2),
        _ds(-_FIELD_OF_VIEW_MM / 2),
        _ds(z),
    ]
    ds.SliceLocation = _ds(z)
    ds.PixelData = _phantom_slice(rows, columns, seed=seed, index=index, instances=instances)

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def _phantom_slice(rows: int, columns: int, *, seed: int, index: int, instances: int) -> bytes:
    """Little-endian 16-bit stored values for one slice of the phantom."""
    image = array("H", [_stored(_AIR_HU)]) * (rows * columns)
    cx, cy = columns / 2, rows / 2
    _fill_ellipse(image, rows, columns, cx, cy, 0.42 * columns, 0.32 * rows, _SOFT_TISSUE_HU)

    # The organ is a sphere centred mid-series, nudged by the seed so studies differ.
    radius = 0.15 * min(rows, columns)
    middle = (instances - 1) / 2
    half_depth = max(middle, 1.0)
    depth = (index - middle) / half_depth
    if abs(depth) < 1:
        scale = math.sqrt(1 - depth * depth)
        shift = (seed % 9 - 4) / 100
        _fill_ellipse(
            image,
            rows,
            columns,
            cx * (0.8 + shift),
            cy * (0.9 + shift),
            radius * scale,
            radius * scale,
            _ORGAN_HU,
        )

    spine_radius = 0.06 * min(rows, columns)
    _fill_ellipse(image, rows, columns, cx, cy + 0.2 * rows, spine_radius, spine_radius, _BONE_HU)

    if sys.byteorder == "big":
        image.byteswap()
    return image.tobytes()


def _stored(hounsfield: int) -> int:
    """The stored pixel value for a Hounsfield unit."""
    return hounsfield - _RESCALE_INTERCEPT


def _fill_ellipse(
    image: "array[int]",
    rows: int,
    columns: int,
    cx: float,
    cy: float,
    semi_x: float,
    semi_y: float,
    hounsfield: int,
) -> None:
    """Paint the pixels whose centres fall inside an axis-aligned ellipse."""
    if semi_x <= 0 or semi_y <= 0:
        return
    value = array("H", [_stored(hounsfield)])
    for y in range(max(0, math.floor(cy - semi_y)), min(rows, math.ceil(cy + semi_y) + 1)):
        dy = (y + 0.5 - cy) / semi_y
        if abs(dy) >= 1:
            continue
        half = semi_x * math.sqrt(1 - dy * dy)
        start = max(0, math.ceil(cx - half - 0.5))
        stop = min(columns, math.floor(cx + half - 0.5) + 1)
        if stop > start:
            image[y * columns + start : y * columns + stop] = value * (stop - start)
