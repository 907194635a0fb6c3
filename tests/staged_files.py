"""Files on disk as the receiving site holds them after verification (`StagedObject`s with the
manifest entries a redeem would have), for tests that deliver without a relay."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from dicom_corpus import TEST_FILES

from receiving_site.staging import PREAMBLE, StagedObject, staged_path
from transfer_codes.manifest import ManifestEntry


def staged(paths: list[Path]) -> list[StagedObject]:
    items = []
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        data = path.read_bytes()
        entry = ManifestEntry(
            index=index,
            sop_instance_uid=str(ds.SOPInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            study_instance_uid=str(ds.StudyInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            kind="dicom",
        )
        items.append(StagedObject(entry, path))
    return items


def staged_copies(paths: list[Path], folder: Path) -> list[StagedObject]:
    """`staged` over copies of `paths` in `folder`, named and with the preamble zeroed as the
    receiving site stages them: delivery may write beside a staged file (an uncompressed copy),
    and must never do so beside pydicom's bundled files."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, path in enumerate(paths):
        copy = staged_path(folder, index)
        copy.write_bytes(b"\x00" * PREAMBLE + path.read_bytes()[PREAMBLE:])
        copies.append(copy)
    return staged(copies)


def corrupted_j2k(folder: Path) -> Path:
    """A copy of pydicom's JPEG 2000 CT image (693_J2KI.dcm) in `folder` whose codestream header
    (the SIZ marker segment) is overwritten: valid DICOM whose pixel data no decoder reads."""
    data = (TEST_FILES / "693_J2KI.dcm").read_bytes()
    siz = data.index(b"\xff\x4f\xff\x51") + 4  # SOC, then the SIZ marker
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "broken_j2k.dcm"
    path.write_bytes(data[:siz] + b"\xff" * 40 + data[siz + 40 :])
    return path
