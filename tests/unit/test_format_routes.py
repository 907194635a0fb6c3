"""The contexts offered to a PACS and each image's route after negotiation (pure, no peer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

from receiving_site import errors, formats
from receiving_site.staging import StagedObject
from transfer_codes.manifest import ManifestEntry

EXPLICIT, IMPLICIT = str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)
BOTH = (EXPLICIT, IMPLICIT)


def image(index: int, sop_class: str, syntax: str) -> StagedObject:
    entry = ManifestEntry(
        index=index,
        sop_instance_uid=f"1.2.3.{index + 1}",
        series_instance_uid="1.2.3",
        study_instance_uid="1.2",
        sop_class_uid=str(sop_class),
        transfer_syntax_uid=str(syntax),
        size=1,
        sha256="0" * 64,
        kind="dicom",
    )
    return StagedObject(entry, Path(f"IM{index:06d}.dcm"))


def test_each_format_gets_a_context_and_compressed_classes_an_uncompressed_one() -> None:
    study = [
        image(0, CTImageStorage, ExplicitVRLittleEndian),
        image(1, CTImageStorage, JPEG2000),
        image(2, MRImageStorage, DeflatedExplicitVRLittleEndian),
        image(3, MRImageStorage, ExplicitVRBigEndian),  # not compressed: no fallback of its own
    ]
    offer = formats.offer(study)
    assert offer.contexts == (
        (CTImageStorage, (EXPLICIT,)),
        (CTImageStorage, (str(JPEG2000),)),
        (MRImageStorage, (str(DeflatedExplicitVRLittleEndian),)),
        (MRImageStorage, (str(ExplicitVRBigEndian),)),
        (CTImageStorage, BOTH),
        (MRImageStorage, BOTH),
    )
    assert offer.uncompressed == {CTImageStorage, MRImageStorage}


def test_the_original_format_goes_when_accepted_and_explicit_vr_is_preferred() -> None:
    study = [image(0, CTImageStorage, JPEG2000), image(1, MRImageStorage, RLELossless)]
    offer = formats.offer(study)
    accepted = {
        (CTImageStorage, str(JPEG2000)),
        (MRImageStorage, IMPLICIT),
        (MRImageStorage, EXPLICIT),
    }
    assert offer.routes(study, accepted) == {1: EXPLICIT}
    assert offer.routes(study, {(CTImageStorage, IMPLICIT), (MRImageStorage, IMPLICIT)}) == {
        0: IMPLICIT,
        1: IMPLICIT,
    }


def test_an_image_that_can_go_neither_way_is_named_and_nothing_goes() -> None:
    study = [image(0, CTImageStorage, JPEG2000), image(1, MRImageStorage, RLELossless)]
    offer = formats.offer(study)
    with pytest.raises(errors.PacsRefused) as raised:
        offer.routes(study, {(CTImageStorage, EXPLICIT)})
    assert raised.value.message == (
        "The PACS does not accept 1 of the 2 images in the format they were sent: MR Image "
        "Storage in RLE Lossless (1 image). Decompressing them would not help: it does not take "
        "these kinds of images uncompressed either. Nothing was stored. Ask the PACS "
        "administrators to accept this format for this system, or deliver into a folder with "
        "--out."
    )


def test_the_study_own_formats_come_first_within_the_context_limit() -> None:
    # 127 formats of one class each, the first two compressed: one uncompressed offer fits.
    classes = [f"1.2.840.10008.5.1.4.1.1.{n}" for n in range(100, 227)]
    study = [image(0, classes[0], JPEG2000), image(1, classes[1], RLELossless)]
    study += [image(n, sop, ExplicitVRLittleEndian) for n, sop in enumerate(classes[2:], 2)]
    offer = formats.offer(study)
    assert len(offer.contexts) == formats.MAX_CONTEXTS
    assert offer.contexts[-1] == (classes[0], BOTH)
    assert offer.uncompressed == {classes[0]}
    accepted = {(sop, EXPLICIT) for sop in classes if sop != classes[1]}
    assert offer.routes(study, accepted | {(classes[1], str(RLELossless))}) == {0: EXPLICIT}
    with pytest.raises(errors.PacsRefused) as raised:
        offer.routes(study, accepted)  # the RLE class was never offered uncompressed
    assert "RLE Lossless (1 image). Nothing was stored." in raised.value.message

    too_many = [image(127, classes[0], IMPLICIT), image(128, classes[1], IMPLICIT)]
    with pytest.raises(errors.PacsRefused, match="more kinds of images"):
        formats.offer([*study, *too_many])


def test_the_note_says_how_many_and_why() -> None:
    assert formats.decompressed_note({}, 240) == ""
    assert formats.decompressed_note({str(JPEG2000): 12}, 240) == (
        "12 of the 240 images were decompressed because the PACS does not accept "
        "JPEG 2000 Image Compression."
    )
