"""Files on disk as the receiving site holds them after verification (`StagedObject`s with the
manifest entries a redeem would have), for tests that deliver without a relay."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pydicom
import pytest
from dicom_corpus import TEST_FILES
from pydicom.pixels import convert_color_space
from pydicom.uid import JPEG2000, RLELossless

from receiving_site import errors, reconcile, staged_header
from receiving_site.reconcile import Coercion
from receiving_site.staging import PREAMBLE, StagedObject, staged_path
from transfer_codes.manifest import ManifestEntry


def ct_entry(index: int, size: int, sha256: str = "0" * 64) -> ManifestEntry:
    """A manifest entry of a CT image with made-up UIDs, for tests where only its index, size
    and digest matter."""
    return ManifestEntry(
        index=index,
        sop_instance_uid=f"1.2.826.0.1.3680043.8.498.1.{index + 1}",
        series_instance_uid="1.2.826.0.1.3680043.8.498.2",
        study_instance_uid="1.2.826.0.1.3680043.8.498.3",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        size=size,
        sha256=sha256,
        kind="dicom",
    )


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


def edited(source: Path, path: Path, **values: object) -> Path:
    """A copy of `source` written at `path` with the elements named by keyword set to `values`
    (None: removed); its pixel data as it was, however much Rows and Columns now declare."""
    ds = pydicom.dcmread(source)
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def rle_ybr_full(folder: Path) -> Path:
    """pydicom's RLE colour image (SC_rgb_rle.dcm, RGB) converted to YCbCr and encoded again in
    RLE Lossless as YBR_FULL, in `folder`: a lossless image whose samples are not RGB."""
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_rle.dcm")
    ybr = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL")
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.compress(RLELossless, ybr, generate_instance_uid=False)
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "rle_ybr_full.dcm", enforce_file_format=True)
    return folder / "rle_ybr_full.dcm"


def jpeg2000_ybr_ict(folder: Path) -> Path:
    """pydicom's RLE colour image (SC_rgb_rle.dcm) encoded in JPEG 2000 with the irreversible
    colour transform (YBR_ICT, so lossy whatever the ratio), in `folder`, saying nothing of
    Lossy Image Compression: as a sender that leaves it out sends it."""
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_rle.dcm")
    rgb = ds.pixel_array
    ds.PhotometricInterpretation = "YBR_ICT"
    ds.compress(JPEG2000, rgb, j2k_cr=[10], generate_instance_uid=False)
    assert "LossyImageCompression" not in ds
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "j2k_ybr_ict.dcm", enforce_file_format=True)
    return folder / "j2k_ybr_ict.dcm"


def declaring(folder: Path, rows: int, columns: int, *, padding: int = 0) -> Path:
    """pydicom's RLE MR image (MR_small_RLE.dcm: 64 x 64, 16 bits, 8 KB) made to declare `rows`
    x `columns` pixels, its compressed pixel data unchanged, and made `padding` bytes bigger by
    a private element, in `folder`: a small file whose header claims a huge image. Nothing here
    allocates what it declares."""
    ds = pydicom.dcmread(TEST_FILES / "MR_small_RLE.dcm")
    ds.Rows, ds.Columns = rows, columns
    if padding:
        block = ds.private_block(0x0011, "TRAUMA RELAY TEST PADDING", create=True)
        block.add_new(0x01, "OB", bytes(padding))
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "declaring.dcm", enforce_file_format=True)
    return folder / "declaring.dcm"


def coerced_whole(path: Path, coercion: Coercion) -> bytes:
    """What a full pydicom read, `coerce` and write of the staged file at `path` gives."""
    ds = pydicom.dcmread(path)
    reconcile.coerce(ds, coercion)
    ds.preamble = b"\x00" * PREAMBLE
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def count_header_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time `staged_header.parse` reads a staged file's header
    (clear it to count afresh)."""
    reads: list[int] = []
    parse = staged_header.parse

    def counted(f: BinaryIO) -> staged_header.StagedHeader:
        reads.append(1)
        return parse(f)

    monkeypatch.setattr(staged_header, "parse", counted)
    return reads


def failing_check(bad: StagedObject) -> Callable[[StagedObject], staged_header.StagedHeader]:
    """A check for `StoreAsVerified.put` (and STOW-RS's): the header of every image, read as
    the identity check reads it, except `bad`, which belongs to another patient."""

    def check(item: StagedObject) -> staged_header.StagedHeader:
        if item is bad:
            raise errors.IdentityMismatch()
        return staged_header.read(item.path, item.entry.index + 1)

    return check
