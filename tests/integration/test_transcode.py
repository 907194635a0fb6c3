"""The uncompressed copy of one staged image: what it keeps and what it changes (real files,
pydicom's own decoders; no peer)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_corpus import TEST_FILES, valid_part10_images
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from staged_files import (
    coerced_whole,
    corrupted_j2k,
    declaring,
    edited,
    jpeg2000_ybr_ict,
    rle_ybr_full,
    staged_copies,
)

from receiving_site import errors, transcode
from receiving_site.reconcile import Coercion, Demographics
from receiving_site.staging import PREAMBLE


def test_the_copy_is_uncompressed_beside_the_staged_file_with_the_same_identity(
    tmp_path: Path,
) -> None:
    (item,) = staged_copies([TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"], tmp_path)  # YBR_FULL JPEG
    original = pydicom.dcmread(item.path)

    copy = transcode.rewrite(item, ExplicitVRLittleEndian)

    assert copy.parent == item.path.parent
    assert copy != item.path
    data = copy.read_bytes()
    assert data[:PREAMBLE] == b"\x00" * PREAMBLE
    assert data[PREAMBLE : PREAMBLE + 4] == b"DICM"
    ds = pydicom.dcmread(copy)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == original.file_meta.MediaStorageSOPInstanceUID
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID"):
        assert ds[keyword].value == original[keyword].value
    assert (original.PhotometricInterpretation, ds.PhotometricInterpretation) == (
        "YBR_FULL",
        "RGB",
    )
    assert ds.PlanarConfiguration == 0
    assert ds.LossyImageCompression == "01"
    assert (
        item.path.read_bytes()[PREAMBLE:]
        == (TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm").read_bytes()[PREAMBLE:]
    )  # the staged file itself is untouched


def test_a_lossy_jpeg_that_does_not_say_so_is_marked_lossy(tmp_path: Path) -> None:
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm")
    del ds.LossyImageCompression
    ds.save_as(tmp_path / "unmarked.dcm", enforce_file_format=True)
    (item,) = staged_copies([tmp_path / "unmarked.dcm"], tmp_path / "staged")

    copy = transcode.rewrite(item, ImplicitVRLittleEndian)

    ds = pydicom.dcmread(copy)
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds.LossyImageCompression == "01"


def test_a_lossless_original_keeps_what_the_sender_wrote(tmp_path: Path) -> None:
    (item,) = staged_copies([TEST_FILES / "MR_small_RLE.dcm"], tmp_path)
    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))
    assert "LossyImageCompression" not in ds


def test_data_that_does_not_decode_leaves_no_copy(tmp_path: Path) -> None:
    (item,) = staged_copies([corrupted_j2k(tmp_path)], tmp_path / "staged")

    with pytest.raises(errors.Undecodable, match="failed to read the header"):
        transcode.rewrite(item, ExplicitVRLittleEndian)
    assert sorted(p.name for p in item.path.parent.iterdir()) == [item.path.name]


@pytest.mark.parametrize("name", ["SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm"])
def test_a_near_lossless_jpeg_ls_image_is_marked_lossy(tmp_path: Path, name: str) -> None:
    # pydicom's files have no Study or Series Instance UID, which staging needs.
    uids = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1", "SeriesInstanceUID": "1.2.3.4"}
    source = edited(TEST_FILES / name, tmp_path / name, **uids)
    assert "LossyImageCompression" not in pydicom.dcmread(source)
    (item,) = staged_copies([source], tmp_path / "staged")

    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))

    assert ds.LossyImageCompression == "01"
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(pixel_array(ds, as_rgb=False), pixel_array(source))


def test_jpeg_2000_with_the_irreversible_colour_transform_is_marked_lossy(tmp_path: Path) -> None:
    source = jpeg2000_ybr_ict(tmp_path)
    (item,) = staged_copies([source], tmp_path / "staged")

    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))

    assert ds.LossyImageCompression == "01"
    # OpenJPEG undoes the colour transform: the copy is RGB and says so.
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(pixel_array(ds, as_rgb=False), pixel_array(source))


@pytest.mark.parametrize(
    ("name", "sender"),
    [
        ("693_J2KI.dcm", None),  # JPEG 2000 (may be lossy), grey, saying nothing
        ("SC_rgb_gdcm_KY.dcm", "00"),  # JPEG 2000 (may be lossy), RGB
        ("examples_jpeg2k.dcm", "00"),  # JPEG 2000 Lossless, YBR_RCT
    ],
)
def test_other_jpeg_2000_keeps_what_the_sender_wrote(
    tmp_path: Path, name: str, sender: str | None
) -> None:
    source = edited(TEST_FILES / name, tmp_path / name, LossyImageCompression=sender)
    (item,) = staged_copies([source], tmp_path / "staged")

    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))

    assert ds.get("LossyImageCompression") == sender
    assert ds.PhotometricInterpretation in ("MONOCHROME2", "RGB")
    assert np.array_equal(pixel_array(ds, as_rgb=False), pixel_array(source))


def test_a_lossless_ycbcr_image_keeps_exactly_its_samples(tmp_path: Path) -> None:
    # RLE YBR_FULL: converting it to RGB would round samples, in a copy that does not say it
    # is lossy. YBR_FULL is a valid uncompressed interpretation.
    source = rle_ybr_full(tmp_path)
    (item,) = staged_copies([source], tmp_path / "staged")

    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))

    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("YBR_FULL", 0)
    assert "LossyImageCompression" not in ds
    assert np.array_equal(pixel_array(ds, as_rgb=False), pixel_array(source, as_rgb=False))


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm"])
def test_a_lossy_jpeg_ycbcr_image_becomes_rgb(tmp_path: Path, name: str) -> None:
    # YBR_FULL and YBR_FULL_422: uncompressed, YBR_FULL_422 would mean subsampled samples.
    (item,) = staged_copies([TEST_FILES / name], tmp_path)

    ds = pydicom.dcmread(transcode.rewrite(item, ExplicitVRLittleEndian))

    assert pydicom.dcmread(TEST_FILES / name).PhotometricInterpretation.startswith("YBR_FULL")
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(pixel_array(ds, as_rgb=False), pixel_array(TEST_FILES / name))


def refused_within(item_path: Path, syntax: str, limit: int) -> errors.Undecodable:
    """The refusal `rewrite` raises for the staged image at `item_path`, which must come
    before Python allocates `limit` bytes (numpy's buffers included) in all."""
    (item,) = staged_copies([item_path], item_path.parent / "staged")
    tracemalloc.start()
    try:
        with pytest.raises(errors.Undecodable) as raised:
            transcode.rewrite(item, syntax)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit
    assert sorted(p.name for p in item.path.parent.iterdir()) == [item.path.name]  # no copy
    return raised.value


def test_an_image_declaring_far_more_pixels_than_its_file_could_hold_is_refused(
    tmp_path: Path,
) -> None:
    source = declaring(tmp_path, 10_000, 10_000)  # 16 bits: 191 MB from 8 KB of RLE
    assert source.stat().st_size < 10_000

    refusal = refused_within(source, ExplicitVRLittleEndian, limit=20 * 2**20)

    assert refusal.message == (
        "the image declares 191 MB of pixels, more than 72 times the 8 KB it was sent in"
    )


def test_an_rle_image_may_declare_only_what_rle_can_compress(tmp_path: Path) -> None:
    # 1,000 x 1,000 at 16 bits: 1.9 MB from 8 KB, well under 4096 times but over RLE's 72
    source = declaring(tmp_path, 1_000, 1_000)
    refusal = refused_within(source, ExplicitVRLittleEndian, limit=20 * 2**20)
    assert refusal.message == (
        "the image declares 2 MB of pixels, more than 72 times the 8 KB it was sent in"
    )


def test_an_image_declaring_more_pixels_than_this_site_decompresses_is_refused(
    tmp_path: Path,
) -> None:
    # 40,000 x 40,000 at 16 bits: 3,052 MB, under 4096 times the file padded to over 1 MB.
    source = declaring(tmp_path, 40_000, 40_000, padding=2**20)
    assert source.stat().st_size * transcode.MAX_EXPANSION > 40_000**2 * 2 > 2 * 2**30

    refusal = refused_within(source, ExplicitVRLittleEndian, limit=20 * 2**20)

    assert refusal.message == (
        "the image declares 3,052 MB of pixels, more than the 2,048 MB this site decompresses"
    )


@pytest.mark.parametrize("path", valid_part10_images(), ids=lambda path: path.name)
def test_a_coerced_copy_is_the_one_a_whole_read_and_write_gives(tmp_path: Path, path: Path) -> None:
    """Only coerced, the pixel data is copied as staged rather than read and written again:
    the copy is the same, byte for byte, in every transfer syntax (big endian, implicit VR,
    encapsulated, deflated), with elements after the pixel data, or with none."""
    (item,) = staged_copies([path], tmp_path)
    local = Demographics("MRN-777", "REGIONAL", "DOE^JANE", "19850214")
    coercion = Coercion(local, datetime(2026, 11, 29, 23, 5, tzinfo=UTC), "trauma-relay", "ER")
    expected = coerced_whole(item.path, coercion)
    assert transcode.rewrite(item, coercion=coercion).read_bytes() == expected
