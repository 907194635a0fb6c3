"""The DICOMDIR of a study written to a folder, listing each file where `layout` put it.

pydicom's `FileSet` makes the directory records (which record type for which SOP class, the
keys each record needs, PS3.3 F.5), but it names files its own way (`PT000000/ST000000/...`).
So the records are made from header-only copies in a scratch folder, then each record's
Referenced File ID is pointed at our file and the records' byte offsets, which move when a
File ID changes length, are recomputed from where the records land when written again.

A record needs some values (Study ID, Series Number, Instance Number) that images often leave
empty; the record, never the image, then gets one made up as DCMTK's `dcmmkdir +I` does. An
image pydicom cannot list (no patient ID or study date, a SOP class without a record type) is
left out of the DICOMDIR but stays in the folder; `write` says which and why.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from site_agent.local_state import write_atomically

NAME = "DICOMDIR"
_OFFSETS = ("OffsetOfTheNextDirectoryRecord", "OffsetOfReferencedLowerLevelDirectoryEntity")
_ROOT_OFFSETS = (
    "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity",
    "OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity",
)


def _made_up(ds: Dataset, path: PurePosixPath) -> None:
    """Values a directory record needs (Type 1) that the image left empty, in the header copy
    only: the study folder's name as Study ID, the series folder's number, the image's."""
    if not ds.get("StudyID"):
        ds.StudyID = path.parts[1]
    if not ds.get("SeriesNumber"):
        ds.SeriesNumber = "".join(c for c in path.parts[2] if c.isdigit())[:8] or "1"
    if not ds.get("InstanceNumber"):
        ds.InstanceNumber = int(path.name[2:]) + 1 if path.name[2:].isdigit() else 1


def write(root: Path, files: Sequence[tuple[int, PurePosixPath]]) -> list[str]:
    """Write `root/DICOMDIR` listing `files` (image index, path relative to `root`); returns
    a reason for each image left out. Raises `OSError` if the DICOMDIR cannot be written."""
    file_set = FileSet()
    try:
        return _write(root, files, file_set)
    finally:
        # pydicom stages added instances in a temporary folder it leaves to the garbage
        # collector (which warns, ResourceWarning); remove it now.
        file_set._stage["t"].cleanup()


def _write(root: Path, files: Sequence[tuple[int, PurePosixPath]], file_set: FileSet) -> list[str]:
    wanted: dict[str, PurePosixPath] = {}
    left_out: list[str] = []
    for index, path in files:
        ds = pydicom.dcmread(root / path, stop_before_pixels=True)
        _made_up(ds, path)
        try:
            file_set.add(ds)
        except (ValueError, KeyError, AttributeError) as e:
            left_out.append(f"image {index + 1}: {e}")
            continue
        wanted[str(ds.SOPInstanceUID)] = path
    if not wanted:
        return left_out
    with tempfile.TemporaryDirectory(prefix="trauma-relay-dicomdir-") as scratch:
        file_set.write(scratch)
        dicomdir = pydicom.dcmread(Path(scratch) / NAME)
    write_atomically(root / NAME, _pointed_at(dicomdir, wanted))
    return left_out


def _encoded(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _pointed_at(dicomdir: Dataset, wanted: dict[str, PurePosixPath]) -> bytes:
    """`dicomdir` with each image record's File ID set to `wanted`, its offsets recomputed."""
    records = dicomdir.DirectoryRecordSequence
    position = {int(r.seq_item_tell): i for i, r in enumerate(records)}
    for record in records:
        uid = record.get("ReferencedSOPInstanceUIDInFile")
        if uid is not None and str(uid) in wanted:
            record.ReferencedFileID = list(wanted[str(uid)].parts)
    # Offsets are fixed-size (UL), so one pass tells where every record now starts.
    placed = pydicom.dcmread(BytesIO(_encoded(dicomdir))).DirectoryRecordSequence
    moved = [int(r.seq_item_tell) for r in placed]

    def relocated(offset: int) -> int:
        return moved[position[offset]] if offset else 0

    for record in records:
        for keyword in _OFFSETS:
            setattr(record, keyword, relocated(int(record.get(keyword, 0))))
    for keyword in _ROOT_OFFSETS:
        setattr(dicomdir, keyword, relocated(int(dicomdir.get(keyword, 0))))
    return _encoded(dicomdir)
