"""The uncompressed copy of one staged image: what it keeps and what it changes (real files,
pydicom's own decoders; no peer)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom_corpus import TEST_FILES
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from staged_files import corrupted_j2k, staged_copies

from receiving_site import errors, transcode
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
