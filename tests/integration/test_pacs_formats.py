"""Delivery into a PACS is all or nothing as far as formats go: every instance's presentation
context is checked after negotiation, before the first C-STORE, against a real pynetdicom
Storage SCP that refuses compressed transfer syntaxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_corpus import TEST_FILES
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from staged_files import staged

from receiving_site import errors
from receiving_site.pacs import PacsAddress, store_to_pacs
from sending_site.synthetic import make_ct_study

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def address(scp: RecordingStorageSCP) -> PacsAddress:
    return PacsAddress(scp.ae_title, scp.host, scp.port)


def test_a_refused_format_anywhere_in_the_study_stores_nothing(tmp_path: Path) -> None:
    # Two uncompressed CT slices first, then a JPEG 2000 CT image: before the fix the two
    # slices were stored before the third was found unacceptable.
    study = [*make_ct_study(tmp_path / "ct", 2), TEST_FILES / "693_J2KI.dcm"]

    with RecordingStorageSCP(transfer_syntaxes=UNCOMPRESSED) as scp:
        with pytest.raises(errors.PacsRefused) as raised:
            store_to_pacs(staged(study), address(scp))
        assert scp.stores == []

    message = raised.value.message
    assert "1 of the 3 images" in message
    assert "CT Image Storage in JPEG 2000 Image Compression (1 image)" in message
    assert "Nothing was stored" in message
    assert "Explicit VR Little Endian" not in message  # only what was refused is named


def test_a_pacs_that_refuses_every_format_is_named_as_such(tmp_path: Path) -> None:
    study = make_ct_study(tmp_path / "ct", 2)  # Explicit VR Little Endian
    with RecordingStorageSCP(transfer_syntaxes=[ImplicitVRLittleEndian]) as scp:
        with pytest.raises(errors.PacsRefused) as raised:
            store_to_pacs(staged(study), address(scp))
        assert scp.stores == []
    assert "CT Image Storage in Explicit VR Little Endian (2 images)" in raised.value.message
    assert "Nothing was stored" in raised.value.message


def test_a_study_the_pacs_accepts_is_stored_whole(tmp_path: Path) -> None:
    study = [*make_ct_study(tmp_path / "ct", 2), TEST_FILES / "693_J2KI.dcm"]
    with RecordingStorageSCP() as scp:
        assert store_to_pacs(staged(study), address(scp)) == 3
        assert len(scp.received) == 3
