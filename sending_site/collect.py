"""Gather the instances of a study from files, folders and DICOMDIR media, validating each.

Every file is parsed with pydicom (never by hand). Non-DICOM and empty files are skipped and
listed, not fatal; a damaged DICOM file stops the collection with the reason, since a study
missing an image must not travel as if complete, unless staff chose to send the rest
(`skip_damaged`): the files left out are then listed (`Collection.omitted`), and the sealed
manifest says so to the trauma center. Nothing here touches the network.
"""

from __future__ import annotations

import os
import struct
import unicodedata
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.fileset import FileSet
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from sending_site import errors, text_values
from sending_site.patients import by_patient, mixed_patients_message
from site_agent import inflation
from transfer_codes.manifest import (
    MAX_MODALITY_LENGTH,
    MAX_SERIES,
    MAX_SERIES_DESCRIPTION,
    MAX_SHORT_VALUE,
    SeriesSummary,
)

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
    study_time: str = ""
    series_description: str = ""
    series_number: int | None = None
    slice_thickness: str = ""  # mm, as the file writes it (a decimal string)
    body_part_examined: str = ""  # (0018,0015), for the regions the phone shows
    specific_character_set: str = ""  # (0008,0005), its values joined by "\\"; "": the default


NOT_IN_DICOMDIR = "not in the DICOMDIR, sent anyway"


@dataclass
class Collection:
    instances: list[Instance] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why)
    notes: list[tuple[Path, str]] = field(default_factory=list)  # (path, what to know); sent
    omitted: list[tuple[Path, str]] = field(default_factory=list)  # (path, why): damaged, not sent


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value) if value is not None else ""


def _character_set(ds: pydicom.Dataset) -> str:
    """Specific Character Set (0008,0005) as the file writes it ("ISO_IR 192", or
    "\\ISO 2022 IR 87" for several values); "" when absent (the default repertoire)."""
    value = ds.get("SpecificCharacterSet")
    if not value:
        return ""
    return value if isinstance(value, str) else "\\".join(str(v) for v in value)


def _series_number(ds: pydicom.Dataset) -> int | None:
    try:
        return int(ds.get("SeriesNumber"))
    except (TypeError, ValueError):
        return None


def _plain(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, control characters as spaces (the manifest
    refuses them; a description sometimes carries a stray one)."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return cleaned.strip()[:limit]


def series_summaries(instances: list[Instance]) -> tuple[SeriesSummary, ...]:
    """The series of `instances` as the study summary lists them, by series number (series
    without one last, in the order first met), at most `MAX_SERIES`. A series' slice
    thickness is the one most of its images give (the smaller on a tie); empty if none does,
    or if it does not fit a decimal string."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.series_instance_uid, []).append(instance)

    def order(item: tuple[int, list[Instance]]) -> tuple[bool, int, int]:
        position, members = item
        number = members[0].series_number
        return (number is None, number or 0, position)

    listed = []
    for _, members in sorted(enumerate(groups.values()), key=order)[:MAX_SERIES]:
        thickness = Counter(i.slice_thickness for i in members if i.slice_thickness)
        common = sorted(thickness.items(), key=lambda kv: (-kv[1], _as_number(kv[0])))
        value = common[0][0] if common else ""
        first = members[0]
        listed.append(
            SeriesSummary(
                description=_plain(first.series_description, MAX_SERIES_DESCRIPTION),
                modality=_plain(first.modality, MAX_MODALITY_LENGTH),
                image_count=len(members),
                slice_thickness=value if len(value) <= MAX_SHORT_VALUE else "",
            )
        )
    return tuple(listed)


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _truncation(source: Path | BinaryIO, ds: pydicom.Dataset) -> str | None:
    """Why this parsed file (read from `source`: its path, or the file object it was read
    from) is incomplete, or None. pydicom reads a cut-off file without complaint, so check what
    it read against what the elements declared."""
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
        if isinstance(source, Path):
            with source.open("rb") as f:
                f.seek(end)
                tail = f.read(8)
        else:
            source.seek(end)
            tail = source.read(8)
        if tail != SEQUENCE_DELIMITER[bool(ds.original_encoding[1])]:
            return "the file is cut off inside its compressed pixel data"
    elif isinstance(pixels, RawDataElement) and pixels.value is not None and _native(ds):
        # Whole elements, but fewer pixels than the image's rows, columns and frames need
        # (an export that lost the end and wrote the length of what was left).
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = get_expected_length(ds, unit="bytes")
        except (AttributeError, KeyError, TypeError, ValueError):
            return None  # the image attributes say too little to compare
        if len(pixels.value) < expected:
            return (
                f"the pixel data holds {len(pixels.value)} of the {expected} bytes its image needs"
            )
    return None


def _native(ds: pydicom.Dataset) -> bool:
    """Whether the file says its pixel data is not compressed (the only kind whose length the
    image attributes fix)."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    return syntax is not None and not UID(str(syntax)).is_compressed


def read_checked(path: Path) -> pydicom.Dataset:
    """Parse one Part 10 file whole and check it is not cut off, is encoded as its file meta
    says, has file meta and has Study and Series Instance UIDs. Raises `InvalidDicomError` or
    `ValueError` (the reason)."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty")
    _inflation_bounded(path, size)
    return _checked(path)


def parse_checked(data: bytes, transfer_syntax_uid: str) -> pydicom.Dataset:
    """`read_checked` for a whole Part 10 file held in memory (`data`: the bytes an inbox has
    just written to its spool), whose file meta, written by us, says `transfer_syntax_uid`:
    the same checks and the same reasons, without reading the file back from disk."""
    if not data:
        raise ValueError("the file is empty")
    fp = BytesIO(data)
    if transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        read_preamble(fp, False)
        _read_file_meta_info(fp)
        _inflates_within(fp, len(data))
        fp.seek(0)
    return _checked(fp)


def _checked(source: Path | BinaryIO) -> pydicom.Dataset:
    """The data set of the Part 10 file `source`, checked as `read_checked` says."""
    with warnings.catch_warnings(record=True) as caught:  # reasons here, not noise on stderr
        warnings.simplefilter("always")
        ds = pydicom.dcmread(source)
    for warning in caught:
        if "End of file reached" in str(warning.message):
            # pydicom keeps what it read of a cut undefined-length element, and may drop more.
            raise ValueError("the file is cut off before its end")
        if "VR for reading" in str(warning.message):
            # pydicom guesses its way through explicit VR declared and implicit VR found (or
            # the reverse); DCMTK, at the trauma center, does not, and reads garbage.
            found = str(warning.message).partition(" - ")[0].replace("Expected", "expected")
            raise ValueError(f"it is not encoded in the transfer syntax it declares ({found})")
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta or "MediaStorageSOPInstanceUID" not in meta:
        raise ValueError("the file has no DICOM file meta information")
    why = _truncation(source, ds)
    if why:
        raise ValueError(why)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not _text(ds, keyword):
            raise ValueError(f"the file has no {keyword}")
    return ds


def _inflation_bounded(path: Path, size: int) -> None:
    """Raise `ValueError` if the file is deflated and inflates past what any image should
    (`site_agent.inflation`): pydicom would inflate it whole first, and a deflate bomb of a
    few megabytes takes gigabytes. Other files pass untouched."""
    with path.open("rb") as f:
        try:
            read_preamble(f, False)
            meta = _read_file_meta_info(f)
        except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError, struct.error):
            return  # dcmread says what is wrong, in its words
        if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            _inflates_within(f, size)


def _inflates_within(f: BinaryIO, size: int) -> None:
    """Raise `ValueError` if the deflated data set read from `f` (from its position), in a
    file of `size` bytes, inflates past `inflation.ceiling`."""
    limit = inflation.ceiling(size)
    if inflation.inflates_past(f, limit):
        raise ValueError(
            f"it is deflated and inflates to more than {limit // 2**20:,} MB from a file "
            f"of {max(1, size // 2**10):,} KB, more than any image should; it was not opened"
        )


def read_instance(path: Path) -> Instance:
    """Parse and validate one Part 10 file. Raises `InvalidDicomError` or `ValueError`."""
    ds = read_checked(path)
    return instance_of(path, ds, path.stat().st_size)


def instance_of(path: Path, ds: pydicom.Dataset, size: int) -> Instance:
    """What the push needs of the file at `path` (`size` bytes), from its data set `ds`
    already checked whole (`read_checked`)."""
    with warnings.catch_warnings():
        # pydicom decodes the text values here, and warns of an escape sequence it does not
        # know; `text_values.check` says which value of which file, in words, instead.
        warnings.filterwarnings("ignore", module="pydicom.charset")
        return _instance(path, ds, size)


def _instance(path: Path, ds: pydicom.Dataset, size: int) -> Instance:
    meta = ds.file_meta
    sop_instance = _text(ds, "SOPInstanceUID") or str(meta.MediaStorageSOPInstanceUID)
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
        study_time=_plain(_text(ds, "StudyTime"), MAX_SHORT_VALUE),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_series_number(ds),
        slice_thickness=_plain(_text(ds, "SliceThickness"), 64),
        body_part_examined=_text(ds, "BodyPartExamined"),
        specific_character_set=_character_set(ds),
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


@dataclass
class _Candidates:
    """Files to read, in order, and which of them came from walking a disc whose DICOMDIR does
    not name them (read last, so a file the DICOMDIR names wins a duplicate)."""

    paths: list[Path] = field(default_factory=list)
    unlisted: dict[Path, Path] = field(default_factory=dict)  # file: the disc's root folder
    outside: list[Path] = field(default_factory=list)  # links on a disc to elsewhere; not read


def _walk(folder: Path) -> list[Path]:
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            found.append(Path(parent) / name)
    return found


def _media(dicomdir: Path, into: _Candidates) -> list[Path]:
    """The files the DICOMDIR names; the other files on its disc go to `into.unlisted`. Media
    writers leave images out of the DICOMDIR (a late series, a hand-copied file), so the disc is
    walked too; a file whose real path leaves the disc (a symbolic link) is listed, not read."""
    listed = _dicomdir_files(dicomdir)
    root = dicomdir.parent.resolve()
    named = set(listed)
    for path in _walk(dicomdir.parent):
        target = path.resolve()
        if not target.is_relative_to(root):
            into.outside.append(path)
        elif target not in named:
            into.unlisted.setdefault(target, dicomdir.parent)
    return listed


def _candidates(paths: list[Path]) -> _Candidates:
    result = _Candidates()
    found: list[Path] = []
    for given in paths:
        if given.is_dir() and (given / "DICOMDIR").is_file():
            found.extend(_media(given / "DICOMDIR", result))
        elif given.is_dir():
            found.extend(_walk(given))
        elif given.name.upper() == "DICOMDIR":
            found.extend(_media(given, result))
        elif given.exists():
            found.append(given)
        else:
            raise errors.NoDicomFound(f"{given} does not exist.")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    # Given another way too (a folder inside the disc, say): read once, as given.
    result.unlisted = {p: disc for p, disc in result.unlisted.items() if p not in unique}
    result.paths = [*unique, *result.unlisted]
    return result


def collect(
    paths: list[Path],
    *,
    skip_damaged: bool = False,
    described: Mapping[Path, Instance] | None = None,
) -> Collection:
    """Every valid instance under `paths` (one per SOP Instance UID), plus what was skipped.
    A file `described` names (by any path to it) is taken as described there, not read
    again: the inbox's own checks (`read_checked`'s) made that description as it kept it.

    Raises `DamagedDicom` if any DICOM file is damaged (unless `skip_damaged`: they are then
    in `omitted`), `NoDicomFound` if nothing valid remains and `MixedPatients` if the
    instances do not all belong to one patient."""
    # By resolved path, as the files are read below: a spool folder given through a link, or
    # relative, still finds its descriptions.
    known = {p.resolve(): i for p, i in (described or {}).items()}
    result = Collection()
    damaged: list[tuple[Path, str]] = []
    seen: set[str] = set()
    candidates = _candidates(paths)
    result.skipped.extend((p, "a link to outside the disc; not read") for p in candidates.outside)
    not_images: dict[Path, int] = {}  # disc: its unlisted files that are not DICOM
    for path in candidates.paths:
        if path.name.upper() == "DICOMDIR":
            continue
        disc = candidates.unlisted.get(path)
        try:
            if path.stat().st_size == 0:
                if disc is not None:
                    not_images[disc] = not_images.get(disc, 0) + 1
                else:
                    result.skipped.append((path, "an empty file"))
                continue
            instance = known.get(path)
            if instance is None:
                instance = read_instance(path)
            elif instance.path != path:
                instance = replace(instance, path=path)
        except InvalidDicomError:
            # A disc carries a viewer, autorun files and the like beside the images: counted
            # below, not listed one by one.
            if disc is not None:
                not_images[disc] = not_images.get(disc, 0) + 1
            else:
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
        if disc is not None:
            result.notes.append((path, NOT_IN_DICOMDIR))
    for disc, count in not_images.items():
        why = f"{count} other file(s) on this disc are not DICOM images (a viewer, for example)"
        result.notes.append((disc, why + "; not sent"))
    if damaged and not skip_damaged:
        listing = "; ".join(f"{p.name}: {why}" for p, why in damaged[:10])
        raise errors.DamagedDicom(
            f"{len(damaged)} DICOM file(s) are damaged ({listing}). Nothing was sent: copy the "
            "study again from the PACS or the disc and try again, or add --skip-damaged to send "
            "the rest (the trauma center is told which files were left out)."
        )
    result.omitted.extend(damaged)
    text_values.check(result.instances)
    if not result.instances:
        listing = "; ".join(f"{p.name}: {why}" for p, why in result.skipped[:10])
        raise errors.NoDicomFound(
            "No DICOM images were found in what you gave"
            + (f" ({listing})." if listing else ".")
            + " Check the folder or disc and try again."
        )
    patients = by_patient(
        ((i.patient_id, i.issuer_of_patient_id, i.patient_name), i.path) for i in result.instances
    )
    if len(patients) > 1:
        raise errors.MixedPatients(mixed_patients_message(patients))
    return result
