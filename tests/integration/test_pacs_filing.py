"""Storing filed under the local patient, as the images are verified or as a whole study: every
image arrives coerced with its pixels, and no copy is left beside the staged files, whether
the storing ends, is refused or is stopped. Into a real pynetdicom Storage SCP that keeps every
data set it receives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_corpus import TEST_FILES
from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes, UncompressedTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, evt
from staged_files import corrupted_j2k, staged_copies

from receiving_site import errors
from receiving_site.pacs import PacsAddress, StoreAsVerified, store_to_pacs
from receiving_site.reconcile import Coercion, Demographics
from receiving_site.staging import StagedObject
from sending_site.synthetic import make_ct_study

IMAGES = 40
WHOLE = 70  # images in a whole study
LOCAL = Demographics("MRN-777", "REGIONAL", "DOE^JANE", "19850214")
COERCION = Coercion(LOCAL, datetime(2026, 11, 29, 23, 5, tzinfo=UTC), "trauma-relay", "ER")


class _KeepingScp:
    """Keeps every data set stored; answers `status` (refusing from the `refuse_from`-th)."""

    def __init__(self, refuse_from: int | None = None) -> None:
        self.stored: dict[str, Dataset] = {}
        self.refuse_from = refuse_from
        self._lock = threading.Lock()

    def handle(self, event: Any) -> int:
        with self._lock:
            if self.refuse_from is not None and len(self.stored) >= self.refuse_from:
                return 0xA700  # out of resources
            ds = event.dataset
            ds.file_meta = event.file_meta
            self.stored[str(ds.SOPInstanceUID)] = ds
        return 0x0000


def _serve(scp: _KeepingScp, syntaxes: list[str]) -> Iterator[PacsAddress]:
    ae = AE(ae_title="KEEPING-SCP")
    ae.maximum_associations = 16
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, syntaxes)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, scp.handle)]
    )
    try:
        yield PacsAddress("KEEPING-SCP", "127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()


@pytest.fixture
def scp() -> Iterator[tuple[_KeepingScp, PacsAddress]]:
    recorder = _KeepingScp()
    for address in _serve(recorder, AllTransferSyntaxes):
        yield recorder, address


def _store(items: list[StagedObject], address: PacsAddress) -> StoreAsVerified:
    store = StoreAsVerified(address, COERCION, associations=3)
    for item in items:
        store.put(item)
    store.close()
    return store


def _left_beside(folder: Path) -> list[str]:
    """Files in the staging folder other than the staged images: copies left behind."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".dcm")


def test_every_image_is_stored_filed_under_the_local_patient_with_its_pixels(
    scp: tuple[_KeepingScp, PacsAddress], tmp_path: Path
) -> None:
    recorder, address = scp
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", IMAGES, seed=7), staged)

    delivery = _store(items, address).finish()

    assert delivery.stored == IMAGES
    for item in items:
        original = pydicom.dcmread(item.path)
        ds = recorder.stored[str(original.SOPInstanceUID)]
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("MRN-777", "REGIONAL")
        other = ds.OtherPatientIDsSequence[-1]
        assert (other.PatientID, other.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
        assert ds.OriginalAttributesSequence[-1].ReasonForTheAttributeModification == "COERCE"
        assert ds.PixelData == original.PixelData
    assert _left_beside(staged) == []


def test_an_image_the_pacs_takes_only_decompressed_is_decompressed_and_filed(
    tmp_path: Path,
) -> None:
    recorder = _KeepingScp()
    staged = tmp_path / "staged"
    jpeg = TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"
    items = staged_copies([jpeg, *make_ct_study(tmp_path / "study", 5, seed=8)], staged)
    for address in _serve(recorder, list(UncompressedTransferSyntaxes)):
        delivery = _store(items, address).finish()

    assert delivery.stored == 6
    assert delivery.decompressed_images == 1
    sop = str(pydicom.dcmread(jpeg, stop_before_pixels=True).SOPInstanceUID)
    ds = recorder.stored[sop]
    assert ds.file_meta.TransferSyntaxUID in UncompressedTransferSyntaxes
    assert ds.PatientID == "MRN-777"
    assert _left_beside(staged) == []


def test_no_copy_is_left_when_the_pacs_refuses(
    tmp_path: Path,
) -> None:
    recorder = _KeepingScp(refuse_from=5)
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", IMAGES, seed=9), staged)
    for address in _serve(recorder, AllTransferSyntaxes):
        store = _store(items, address)
        with pytest.raises(errors.PacsRefused):
            store.finish()

    assert len(recorder.stored) == 5
    assert _left_beside(staged) == []


def test_no_copy_is_left_when_the_storing_is_stopped(
    scp: tuple[_KeepingScp, PacsAddress], tmp_path: Path
) -> None:
    _, address = scp
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", IMAGES, seed=10), staged)
    store = StoreAsVerified(address, COERCION, associations=2)
    for item in items:
        store.put(item)
    store.stop()

    store.finish()

    assert _left_beside(staged) == []


def test_a_whole_study_is_filed_under_the_local_patient(tmp_path: Path) -> None:
    recorder = _KeepingScp()
    staged = tmp_path / "staged"
    count = WHOLE
    items = staged_copies(make_ct_study(tmp_path / "study", count, seed=11), staged)
    for address in _serve(recorder, AllTransferSyntaxes):
        delivery = store_to_pacs(items, address, COERCION, associations=3)

    assert delivery.stored == count
    assert {ds.PatientID for ds in recorder.stored.values()} == {"MRN-777"}
    assert _left_beside(staged) == []


def test_an_image_that_does_not_decode_among_many_stores_nothing_and_leaves_no_copy(
    tmp_path: Path,
) -> None:
    recorder = _KeepingScp()
    staged = tmp_path / "staged"
    study = make_ct_study(tmp_path / "study", WHOLE, seed=12)
    items = staged_copies([*study[:10], corrupted_j2k(tmp_path), *study[10:]], staged)
    for address in _serve(recorder, list(UncompressedTransferSyntaxes)):
        with pytest.raises(errors.PacsRefused, match="Nothing was stored"):
            store_to_pacs(items, address, COERCION, associations=3)

    assert recorder.stored == {}
    assert _left_beside(staged) == []
