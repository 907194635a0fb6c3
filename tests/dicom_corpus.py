"""Real-world DICOM files to send through the relay: pydicom's bundled test files.

Only the files installed with pydicom are used (``pydicom/data/test_files``); nothing is
downloaded. ``python tests/dicom_corpus.py`` prints what is kept, what is left out and why.
"""

import functools
import struct
import warnings
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.config import disable_value_validation
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, RLELossless, UncompressedTransferSyntaxes
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

_IDENTIFYING_KEYWORDS = ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PART10_MAGIC_OFFSET = 128
# Explicit VR elements whose length field is 4 bytes (PS3.5 7.1.2); the others use 2.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR"}
_LONG_VRS |= {b"UT", b"UV"}


def valid_part10_images(*, one_per_instance: bool = True) -> list[Path]:
    """Bundled files that a storage SCU can C-STORE as they are, sorted by path.

    A file is kept when it has the 128-byte preamble and ``DICM``; file meta with Transfer
    Syntax, Media Storage SOP Class and Media Storage SOP Instance UIDs that agree with the
    dataset; a storage SOP class (so no DICOMDIR); valid Study, Series and SOP Instance UIDs
    not hidden behind VR UN; pixel data that is all there; and when pydicom reads it, without
    ``force``, with no error and no warning about its structure. Values of other elements are
    not validated: real files carry odd values, and the relay must pass them on untouched.

    pydicom ships the same SOP instance in several encodings (``MR_small*.dcm``,
    ``SC_rgb_rle*.dcm``, ...) and a few different objects that share a UID. A PACS keeps one
    object per SOP Instance UID, so by default only one file per UID is returned, chosen to
    cover as many transfer syntaxes as possible. Two such groups hold the only JPEG-LS
    Lossless, JPEG Lossless SV1 and RLE files, so one of the three must go: JPEG-LS Lossless,
    as pydicom decodes RLE without plugins and JPEG Lossless SV1 is far more common.
    ``one_per_instance=False`` returns every valid file, covering them all, with repeated UIDs.
    """
    survey = _survey()
    return list(survey.distinct if one_per_instance else survey.valid)


def transfer_syntax(path: Path) -> UID:
    """The Transfer Syntax UID in the file meta of a Part 10 file."""
    return UID(read_file_meta_info(path).TransferSyntaxUID)


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset of a Part 10 file: every byte after the file meta (group 0002).

    This is what a storage SCU sends as the C-STORE data set when it does not transcode. The
    file meta is walked element by element (always Explicit VR Little Endian) rather than
    trusting its group length, which some writers get wrong or omit.
    """
    data = path.read_bytes()
    if data[_PART10_MAGIC_OFFSET : _PART10_MAGIC_OFFSET + 4] != b"DICM":
        raise ValueError(f"{path} is not a DICOM Part 10 file")
    offset = _PART10_MAGIC_OFFSET + 4
    while offset + 8 <= len(data):
        (group,) = struct.unpack_from("<H", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<L", data, offset + 8)
            offset += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            offset += 8 + length
    return data[offset:]


def decode_dataset(encoded: bytes, transfer_syntax: str) -> pydicom.Dataset:
    """Decode a data set as received over DICOM (no preamble or file meta)."""
    syntax = UID(transfer_syntax)
    if syntax.is_deflated:
        encoded = zlib.decompress(encoded, -zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
    return read_dataset(BytesIO(encoded), syntax.is_implicit_VR, syntax.is_little_endian)


@dataclass(frozen=True)
class _Survey:
    valid: tuple[Path, ...]  # every file that passes, with repeated SOP Instance UIDs
    distinct: tuple[Path, ...]  # one file per SOP Instance UID
    left_out: dict[Path, str]  # every other file, with the reason


@functools.cache
def _survey() -> _Survey:
    """Sort every file under ``TEST_FILES`` into kept and left out (with the reason)."""
    left_out: dict[Path, str] = {}
    valid: dict[Path, tuple[UID, UID]] = {}
    for path in sorted(p for p in TEST_FILES.rglob("*") if p.is_file()):
        reason = _rejection(path)
        if reason:
            left_out[path] = reason
            continue
        meta = read_file_meta_info(path)
        valid[path] = (UID(meta.MediaStorageSOPInstanceUID), UID(meta.TransferSyntaxUID))

    by_instance: defaultdict[UID, list[Path]] = defaultdict(list)
    for path, (instance, _) in valid.items():
        by_instance[instance].append(path)
    # Greedy cover. Files with a UID of their own come first. From each group sharing a UID
    # keep a file whose syntax is not yet covered, preferring what pydicom decodes without
    # plugins (the relay's fallback for a PACS that refuses compressed syntaxes), then
    # syntaxes that fewer groups offer.
    offered_by = Counter(
        syntax for paths in by_instance.values() for syntax in {valid[p][1] for p in paths}
    )

    def preference(path: Path) -> tuple[bool, bool, int, Path]:
        syntax = valid[path][1]
        native = syntax in UncompressedTransferSyntaxes or syntax == RLELossless
        return (syntax in covered, not native, offered_by[syntax], path)

    distinct = [paths[0] for paths in by_instance.values() if len(paths) == 1]
    covered = {valid[path][1] for path in distinct}
    for instance, paths in by_instance.items():
        if len(paths) == 1:
            continue
        keep = min(paths, key=preference)
        distinct.append(keep)
        covered.add(valid[keep][1])
        for other in paths:
            if other != keep:
                left_out[other] = f"same SOP Instance UID {instance} as {keep.name}"
    return _Survey(tuple(valid), tuple(sorted(distinct)), left_out)


def _rejection(path: Path) -> str | None:
    """Why ``path`` cannot be C-STOREd as it is, or ``None`` if it can."""
    with path.open("rb") as f:
        head = f.read(_PART10_MAGIC_OFFSET + 4)
    if head[_PART10_MAGIC_OFFSET:] != b"DICM":
        return "no preamble and DICM prefix (not Part 10)"
    try:
        with warnings.catch_warnings(), disable_value_validation():
            warnings.simplefilter("error")
            ds = pydicom.dcmread(path)
            # Before any value is converted, while the elements still carry their encoded VR.
            hidden = [k for k in _IDENTIFYING_KEYWORDS if k in ds and ds.get_item(k).VR == "UN"]
            for element in ds.iterall():
                _ = element.value  # convert every raw element, so bad values show up here
    except Exception as error:  # any parse error or warning disqualifies the file
        return f"pydicom cannot parse it cleanly: {type(error).__name__}: {error}"
    if hidden:
        # pydicom looks the VR up in its dictionary; DCMTK (so storescu and Orthanc) does not,
        # and finds no SOP Class or Instance UID (rtdose_rle*.dcm, rewritten by gdcmconv).
        return f"{', '.join(hidden)} encoded with VR UN"

    meta = ds.file_meta
    for keyword in ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"):
        if not meta.get(keyword):
            return f"file meta lacks {keyword} or it is empty"
    if not issubclass(uid_to_service_class(meta.MediaStorageSOPClassUID), StorageServiceClass):
        # A DICOMDIR (Media Storage Directory Storage) indexes a medium; it is not an
        # instance and no PACS accepts it over C-STORE.
        return f"{UID(meta.MediaStorageSOPClassUID).name} is not a storage SOP class"
    # A mismatch means the file meta and the dataset disagree about what the object is; an
    # SCP would file it under the wrong identity.
    if ds.get("SOPClassUID") != meta.MediaStorageSOPClassUID:
        return "SOP Class UID differs from Media Storage SOP Class UID"
    if ds.get("SOPInstanceUID") != meta.MediaStorageSOPInstanceUID:
        return "SOP Instance UID differs from Media Storage SOP Instance UID"
    for keyword in _IDENTIFYING_KEYWORDS[1:]:
        if not UID(str(ds.get(keyword, ""))).is_valid:
            return f"{keyword} is missing or not a valid UID"
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        # e.g. TINY_ALPHA, whose CT images had their pixel data stripped, and SR documents.
        return "no pixel data (not an image)"
    return _pixel_data_problem(ds)


def _pixel_data_problem(ds: pydicom.Dataset) -> str | None:
    """Why the pixel data is incomplete, or ``None`` if every frame is there."""
    if "PixelData" not in ds:
        return None
    frames = int(ds.get("NumberOfFrames") or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        try:
            found = sum(1 for _ in generate_frames(ds.PixelData, number_of_frames=frames))
        except Exception as error:  # a broken fragment sequence in any form disqualifies it
            return f"encapsulated pixel data does not parse: {error}"
        return None if found == frames else f"{found} of {frames} frames encapsulated"
    expected = get_expected_length(ds, unit="bytes")
    if len(ds.PixelData) < expected:
        return f"pixel data truncated: {len(ds.PixelData)} of {expected} bytes"
    return None


if __name__ == "__main__":
    survey = _survey()
    for title, paths in (("one per instance", survey.distinct), ("all valid", survey.valid)):
        syntaxes = Counter(transfer_syntax(path).name for path in paths)
        print(f"{title}: {len(paths)} files in {len(syntaxes)} transfer syntaxes")
        for name, count in sorted(syntaxes.items()):
            print(f"  {count:3d}  {name}")
    print("kept (one per instance):")
    for path in survey.distinct:
        print(f"  {transfer_syntax(path).name:<45.45} {path.relative_to(TEST_FILES)}")
    print(f"left out: {len(survey.left_out)}")
    for path, reason in sorted(survey.left_out.items()):
        print(f"  {path.relative_to(TEST_FILES)}: {reason}")
