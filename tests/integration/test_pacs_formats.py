"""Delivery into a PACS is all or nothing as far as formats go. An image goes in the format it
was sent when the PACS accepts it; an image in a compressed or deflated format the PACS refuses
is decompressed (pydicom) when the PACS takes its kind of image uncompressed; otherwise, or if
it does not decode, nothing is stored. Real peers: Orthanc configured to refuse compressed
syntaxes, and a pynetdicom Storage SCP that records what came off the wire."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_corpus import TEST_FILES, decode_dataset, transfer_syntax, valid_part10_images
from peers.orthanc import OrthancServer
from peers.storage_scp import RecordingStorageSCP
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)
from staged_files import corrupted_j2k, edited, jpeg2000_ybr_ict, rle_ybr_full, staged_copies

from receiving_site import errors
from receiving_site.pacs import PacsAddress, store_to_pacs
from receiving_site.transcode import can_decompress
from sending_site.synthetic import make_ct_study

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# Bundled files pydicom cannot decode with the decoders we install: a 12-bit JPEG with a scan
# header libjpeg rejects, and a JPEG 2000 frame cut by an embedded sequence delimiter. A PACS
# that refuses their format gets nothing (see the corrupted-codestream tests below).
KNOWN_UNDECODABLE = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}
LOSSY_JPEG = {JPEGBaseline8Bit, JPEGExtended12Bit}  # decompressed to RGB
ALWAYS_LOSSY = {*LOSSY_JPEG, JPEGLSNearLossless}  # the copy says "01" whatever the sender did


def address(peer: RecordingStorageSCP | OrthancServer) -> PacsAddress:
    if isinstance(peer, OrthancServer):
        return PacsAddress(peer.ae_title, peer.host, peer.dicom_port)
    return PacsAddress(peer.ae_title, peer.host, peer.port)


def decodes(path: Path) -> bool:
    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception:  # whatever pydicom's decoders raise: this file does not decode
        return False
    return True


def compressed_corpus(*, one_per_instance: bool) -> list[Path]:
    """The bundled valid images in a compressed or deflated syntax that pydicom decodes."""
    files = [
        p
        for p in valid_part10_images(one_per_instance=one_per_instance)
        if can_decompress(transfer_syntax(p))
    ]
    kept = [p for p in files if decodes(p)]
    assert {p.name for p in files} - {p.name for p in kept} <= KNOWN_UNDECODABLE
    return kept


def assert_same_pixels(original: Path, stored: pydicom.Dataset) -> None:
    """The samples stored are exactly pydicom's own decoding of the original: YCbCr as RGB for
    lossy JPEG, as stored for the lossless formats (YBR_FULL stays YBR_FULL)."""
    as_rgb = transfer_syntax(original) in LOSSY_JPEG
    expected = pixel_array(pydicom.dcmread(original), as_rgb=as_rgb)
    got = pixel_array(stored, as_rgb=False)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape), original.name
    assert np.array_equal(got, expected), original.name


# -- Orthanc refusing every compressed syntax ------------------------------------------------


def test_every_compressed_bundled_image_reaches_orthanc_uncompressed(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    files = compressed_corpus(one_per_instance=True)
    syntaxes = Counter(str(transfer_syntax(p)) for p in files)
    assert len(syntaxes) >= 6  # JPEG baseline and lossless, JPEG 2000 (both), RLE, deflate
    orthanc = orthanc_factory(accepted_transfer_syntaxes=UNCOMPRESSED)

    delivery = store_to_pacs(staged_copies(files, tmp_path / "staged"), address(orthanc))

    assert delivery.stored == delivery.decompressed_images == len(files)
    assert delivery.decompressed == syntaxes
    assert delivery.note.startswith(f"{len(files)} of the {len(files)} images were decompressed")
    assert len(orthanc.instances()) == len(files)
    for path in files:
        original = pydicom.dcmread(path, stop_before_pixels=True)
        orthanc_id = orthanc.find_by_sop_instance_uid(str(original.SOPInstanceUID))
        assert orthanc_id is not None, path.name
        stored = pydicom.dcmread(BytesIO(orthanc.instance_file(orthanc_id)))
        assert stored.file_meta.TransferSyntaxUID in UNCOMPRESSED, path.name
        for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID"):
            assert stored[keyword].value == original[keyword].value, (path.name, keyword)
        if transfer_syntax(path) in ALWAYS_LOSSY:
            assert stored.LossyImageCompression == "01", path.name
        assert_same_pixels(path, stored)
    assert list((tmp_path / "staged").glob("*.uncompressed*")) == []  # copies removed


def test_an_image_that_does_not_decode_stores_nothing_in_orthanc(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    study = [*make_ct_study(tmp_path / "ct", 2), TEST_FILES / "MR_small_RLE.dcm"]
    study.append(corrupted_j2k(tmp_path / "broken"))
    assert not decodes(study[-1])
    orthanc = orthanc_factory(accepted_transfer_syntaxes=UNCOMPRESSED)

    with pytest.raises(errors.PacsRefused) as raised:
        store_to_pacs(staged_copies(study, tmp_path / "staged"), address(orthanc))

    assert orthanc.instances() == []
    message = raised.value.message
    assert message.startswith("The PACS does not accept 2 of the 4 images in the format")
    assert "CT Image Storage in JPEG 2000 Image Compression (1 image)" in message
    assert "MR Image Storage in RLE Lossless (1 image)" in message
    assert "image 4 could not be decompressed (" in message
    assert "Nothing was stored" in message
    assert list((tmp_path / "staged").glob("*.uncompressed*")) == []


# -- a pynetdicom Storage SCP: what goes over the wire -------------------------------------


def colour_encodings(folder: Path) -> list[Path]:
    """Colour encodings the valid corpus lacks: RLE YBR_FULL, JPEG 2000 YBR_ICT, and pydicom's
    JPEG-LS near-lossless files given the Study and Series Instance UIDs they lack."""
    uids = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1", "SeriesInstanceUID": "1.2.3.4"}
    near_lossless = [
        edited(TEST_FILES / name, folder / name, **uids)
        for name in ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm")
    ]
    return [rle_ybr_full(folder), jpeg2000_ybr_ict(folder), *near_lossless]


def test_every_encoding_of_every_bundled_image_is_sent_decoded(tmp_path: Path) -> None:
    """Every encoding (JPEG-LS and all the RLE variants too, repeated UIDs included, and the
    colour encodings pydicom does not bundle as valid files) arrives in Explicit VR Little
    Endian with exactly the samples pydicom decodes from the original, lossy if it was."""
    files = compressed_corpus(one_per_instance=False) + colour_encodings(tmp_path / "colour")
    assert any("JPEG-LS" in transfer_syntax(p).name for p in files)
    with RecordingStorageSCP(transfer_syntaxes=UNCOMPRESSED) as scp:
        delivery = store_to_pacs(staged_copies(files, tmp_path / "staged"), address(scp))
        stores = scp.stores
    assert delivery.stored == len(stores) == len(files)
    for path, store in zip(files, stores, strict=True):
        assert store.transfer_syntax == ExplicitVRLittleEndian, path.name
        assert store.sop_instance_uid == str(pydicom.dcmread(path).SOPInstanceUID)
        stored = received(store.dataset, store.transfer_syntax)
        assert_same_pixels(path, stored)
        original = pydicom.dcmread(path, stop_before_pixels=True)
        if transfer_syntax(path) in ALWAYS_LOSSY or original.PhotometricInterpretation == "YBR_ICT":
            assert stored.LossyImageCompression == "01", path.name
        else:
            assert stored.get("LossyImageCompression") == original.get("LossyImageCompression")


def received(encoded: bytes, syntax: str) -> pydicom.Dataset:
    ds = decode_dataset(encoded, syntax)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def test_a_pacs_that_takes_only_implicit_vr_gets_implicit_vr(tmp_path: Path) -> None:
    study = [TEST_FILES / "693_J2KI.dcm", TEST_FILES / "image_dfl.dcm"]
    with RecordingStorageSCP(transfer_syntaxes=[ImplicitVRLittleEndian]) as scp:
        delivery = store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        stores = scp.stores
    assert delivery.stored == 2
    assert [s.transfer_syntax for s in stores] == [ImplicitVRLittleEndian] * 2
    for path, store in zip(study, stores, strict=True):
        assert_same_pixels(path, received(store.dataset, store.transfer_syntax))
    assert delivery.note == (
        "2 of the 2 images were decompressed because the PACS does not accept "
        "Deflated Explicit VR Little Endian (1) or JPEG 2000 Image Compression (1)."
    )


def test_the_original_format_is_sent_when_the_pacs_accepts_it(tmp_path: Path) -> None:
    study = [*make_ct_study(tmp_path / "ct", 2), TEST_FILES / "693_J2KI.dcm"]
    with RecordingStorageSCP() as scp:
        delivery = store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        stores = scp.stores
    assert (delivery.stored, delivery.decompressed_images, delivery.note) == (3, 0, "")
    assert [s.transfer_syntax for s in stores] == [str(transfer_syntax(p)) for p in study]


def test_only_the_refused_format_is_decompressed(tmp_path: Path) -> None:
    # The PACS takes JPEG 2000 lossless but not JPEG 2000 (lossy-capable) nor RLE.
    study = [TEST_FILES / "MR_small_jp2klossless.dcm", TEST_FILES / "693_J2KI.dcm"]
    syntaxes = [JPEG2000Lossless, *UNCOMPRESSED]
    with RecordingStorageSCP(transfer_syntaxes=syntaxes) as scp:
        delivery = store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        stores = scp.stores
    assert [s.transfer_syntax for s in stores] == [JPEG2000Lossless, ExplicitVRLittleEndian]
    assert delivery.note == (
        "1 of the 2 images was decompressed because the PACS does not accept "
        "JPEG 2000 Image Compression."
    )


# -- refusals: nothing stored ----------------------------------------------------------------


def test_a_kind_of_image_the_pacs_refuses_in_any_format_stores_nothing(tmp_path: Path) -> None:
    # Two uncompressed CT slices first, then an RLE MR image, and the PACS takes only CT:
    # before the all-or-nothing check the two slices were stored before the MR was refused.
    study = [*make_ct_study(tmp_path / "ct", 2), TEST_FILES / "MR_small_RLE.dcm"]
    with RecordingStorageSCP(sop_classes=[CTImageStorage]) as scp:
        with pytest.raises(errors.PacsRefused) as raised:
            store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        assert scp.stores == []

    message = raised.value.message
    assert "1 of the 3 images" in message
    assert "MR Image Storage in RLE Lossless (1 image)" in message
    assert "does not take these kinds of images uncompressed either" in message
    assert "Nothing was stored" in message
    assert "Explicit VR Little Endian" not in message  # only what was refused is named


def test_a_corrupted_codestream_stores_nothing(tmp_path: Path) -> None:
    study = [*make_ct_study(tmp_path / "ct", 2), corrupted_j2k(tmp_path / "broken")]
    assert not decodes(study[-1])
    with RecordingStorageSCP(transfer_syntaxes=UNCOMPRESSED) as scp:
        with pytest.raises(errors.PacsRefused) as raised:
            store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        assert scp.stores == []
    message = raised.value.message
    assert "1 of the 3 images" in message
    assert "CT Image Storage in JPEG 2000 Image Compression (1 image)" in message
    assert "image 3 could not be decompressed (" in message
    assert "Nothing was stored" in message


def test_a_pacs_that_refuses_every_format_is_named_as_such(tmp_path: Path) -> None:
    study = make_ct_study(tmp_path / "ct", 2)  # Explicit VR Little Endian: not converted
    with RecordingStorageSCP(transfer_syntaxes=[ImplicitVRLittleEndian]) as scp:
        with pytest.raises(errors.PacsRefused) as raised:
            store_to_pacs(staged_copies(study, tmp_path / "staged"), address(scp))
        assert scp.stores == []
    assert "CT Image Storage in Explicit VR Little Endian (2 images)" in raised.value.message
    assert "uncompressed either" not in raised.value.message
    assert "Nothing was stored" in raised.value.message
