"""The DICOMDIR of a study written to a folder, listing each file where `layout` put it.

pydicom's `FileSet` makes the directory records (which record type for which SOP class, the
keys each record needs, PS3.3 F.5) and pydicom encodes them, but `FileSet.add` would name files
its own way (`PT000000/ST000000/...`), copy each one to a staging folder, and scan every
instance and sibling record already added, so n images would cost O(n²). So the records come
from `FileSet`'s own record maker, are put in a tree by pydicom's record keys (an image whose
SOP Instance UID is already listed is listed once), point at our files, and link to each other
by the byte offsets where pydicom's encoding places them.

A record needs some values (Study ID, Series Number, Instance Number) that images often leave
empty; the record, never the image, then gets one made up as DCMTK's `dcmmkdir +I` does. An
image pydicom cannot list (no patient ID or study date, a SOP class without a record type) is
left out of the DICOMDIR but stays in the folder; `write` says which and why.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path, PurePosixPath

import pydicom
from pydicom import fileset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet, RecordNode

from site_agent.local_state import write_atomically

NAME = "DICOMDIR"
_OFFSETS = ("OffsetOfTheNextDirectoryRecord", "OffsetOfReferencedLowerLevelDirectoryEntity")
_UL_SIZE = 4
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


def write(root: Path, files: Sequence[tuple[int, PurePosixPath, Dataset]]) -> list[str]:
    """Write `root/DICOMDIR` listing `files` (image index, path relative to `root`, the image's
    header as read without pixel data, which `write` may add to); returns a reason for each
    image left out. Raises `OSError` if the DICOMDIR cannot be written."""
    encoded, left_out = encode(files)
    if encoded is not None:
        write_atomically(root / NAME, encoded)
    return left_out


def encode(files: Sequence[tuple[int, PurePosixPath, Dataset]]) -> tuple[bytes | None, list[str]]:
    """`write`'s DICOMDIR as bytes, to be written as `NAME` at the root of the folder (None if
    no image can be listed: then none is written), and a reason for each image left out."""
    file_set = FileSet()
    try:
        return _encode(files, file_set)
    finally:
        # pydicom makes a staging folder for every FileSet and leaves it to the garbage
        # collector (which warns, ResourceWarning); remove it now.
        file_set._stage["t"].cleanup()


class _Node:
    """One directory record and the records below it, found by their pydicom key."""

    __slots__ = ("children", "record")

    def __init__(self, record: Dataset) -> None:
        self.record = record
        self.children: dict[str, _Node] = {}


def _in_order(nodes: dict[str, _Node]) -> Iterator[_Node]:
    """`nodes` and the records below them in DICOMDIR order: each before its children."""
    for node in nodes.values():
        yield node
        yield from _in_order(node.children)


def _encode(
    files: Sequence[tuple[int, PurePosixPath, Dataset]], file_set: FileSet
) -> tuple[bytes | None, list[str]]:
    top: dict[str, _Node] = {}  # the records at the root: patients
    listed: dict[str, int] = {}  # SOP Instance UID: the image listed with it
    left_out: list[str] = []
    for index, path, ds in files:
        _made_up(ds, path)
        try:
            keys, records = _records(file_set, ds, top)
        except (ValueError, KeyError, AttributeError) as e:
            left_out.append(f"image {index + 1}: {e}")
            continue
        uid = str(keys[-1])
        if uid in listed:
            left_out.append(f"image {index + 1}: the same SOP Instance UID as image {listed[uid]}")
            continue
        listed[uid] = index + 1
        leaf = records[-1]
        assert leaf is not None
        leaf.ReferencedFileID = list(path.parts)
        level = top
        for key, record in zip(keys, records, strict=True):
            node = level.get(key)
            if node is None:
                assert record is not None
                node = level[key] = _Node(record)
            level = node.children
    if not listed:
        return None, left_out
    return _encoded_with_offsets(file_set._create_dicomdir(), top), left_out


def _records(
    file_set: FileSet, ds: Dataset, top: dict[str, _Node]
) -> tuple[list[str], list[Dataset | None]]:
    """The keys of `ds`'s directory records from its patient down, and the records themselves,
    each record made as pydicom's `FileSet` makes it. When its patient, study and series are
    listed already (as for all but the first image of a series), only its own record is made:
    the others would be made only to be dropped (the first image's are kept), and they are
    most of the work."""
    series = _listed_series(ds, top)
    if series is None or fileset._single_level_record_type(ds) != "PATIENT":
        # FileSet.add's own record maker (private, but `add` is what scans: see above).
        made: list[Dataset | None] = list(file_set._recordify(ds))
        return [str(RecordNode(r).key) for r in made if r is not None], made
    leaf = _image_record(ds)
    return [*series, str(RecordNode(leaf).key)], [None, None, None, leaf]


def _listed_series(ds: Dataset, top: dict[str, _Node]) -> list[str] | None:
    """The keys of `ds`'s patient, study and series if all three are listed, else None."""
    keys = [ds.get("PatientID"), ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")]
    level = top
    for key in keys:
        node = level.get(str(key)) if key else None
        if node is None:
            return None
        level = node.children
    return [str(key) for key in keys]


def _image_record(ds: Dataset) -> Dataset:
    """The lowest of `FileSet._recordify`'s four records for `ds`, made as it makes it."""
    record_type = fileset._four_level_record_type(ds)
    record = fileset.DIRECTORY_RECORDERS[record_type](ds)
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = record_type
    if "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    record.ReferencedFileID = None
    record.ReferencedSOPClassUIDInFile = ds.SOPClassUID
    record.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID
    record.ReferencedTransferSyntaxUIDInFile = ds.file_meta.TransferSyntaxUID
    return record


def _encoded(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _encoded_with_offsets(dicomdir: Dataset, top: dict[str, _Node]) -> bytes:
    """`dicomdir` listing `top` and the records below, each pointing at its next sibling and
    its first child by where pydicom puts them (PS3.10 8.5, PS3.3 F.3). Encoded once, with
    every offset 0; offsets are fixed-size (UL), so that encoding tells where each record
    starts and where each offset's value is, and the offsets are written there."""
    nodes = list(_in_order(top))
    dicomdir.DirectoryRecordSequence = [node.record for node in nodes]
    for record in dicomdir.DirectoryRecordSequence:
        for keyword in _OFFSETS:
            setattr(record, keyword, 0)
    for keyword in _ROOT_OFFSETS:
        setattr(dicomdir, keyword, 0)
    encoded = bytearray(_encoded(dicomdir))
    placed = pydicom.dcmread(BytesIO(encoded))
    # pydicom gives an item's elements' positions from the start of the sequence's value.
    sequence = placed.get_item("DirectoryRecordSequence")
    if not isinstance(sequence, RawDataElement):
        raise ValueError("pydicom read the DICOMDIR's records unexpectedly")  # pydicom changed
    records = placed.DirectoryRecordSequence
    where = {id(node): record for node, record in zip(nodes, records, strict=True)}
    offset = {id(node): int(r.seq_item_tell) for node, r in zip(nodes, records, strict=True)}

    def put(ds: Dataset, keyword: str, value: int, base: int = 0) -> None:
        """Write `value` as `ds`'s `keyword` where pydicom read it (checked to be there)."""
        element = ds.get_item(keyword)
        if not isinstance(element, RawDataElement) or element.length != _UL_SIZE:
            raise ValueError(f"{keyword} was not encoded as one UL")  # pydicom changed
        at = base + element.value_tell
        tag = struct.pack("<HH2s", element.tag.group, element.tag.element, b"UL")
        if encoded[at - 8 : at - 2] != tag:
            raise ValueError(f"{keyword} is not where pydicom read it")  # pydicom changed
        struct.pack_into("<L", encoded, at, value)

    def first_and_next(level: dict[str, _Node]) -> None:
        children = list(level.values())
        for number, child in enumerate(children, 1):
            after = children[number] if number < len(children) else None
            first = next(iter(child.children.values()), None)
            record, base = where[id(child)], sequence.value_tell
            put(record, _OFFSETS[0], offset[id(after)] if after else 0, base)
            put(record, _OFFSETS[1], offset[id(first)] if first else 0, base)

    first_and_next(top)
    for node in nodes:
        first_and_next(node.children)
    roots = list(top.values())
    first_record, last_record = _ROOT_OFFSETS
    put(placed, first_record, offset[id(roots[0])])
    put(placed, last_record, offset[id(roots[-1])])
    return bytes(encoded)
