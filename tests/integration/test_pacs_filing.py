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
from staged_files import corrupted_j2k, count_header_reads, failing_check, staged_copies

from receiving_site import errors, pacs, staged_header
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


def test_images_put_with_their_checked_headers_are_filed_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image put with the header its identity check read is filed from that header, not
    read again, and arrives as one put without it; an image the PACS takes only decompressed
    is decoded from its file whatever header came with it."""
    staged = tmp_path / "staged"
    jpeg = TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"
    items = staged_copies([jpeg, *make_ct_study(tmp_path / "study", 6, seed=13)], staged)
    reads = count_header_reads(monkeypatch)
    stored: list[dict[str, Dataset]] = []
    read_again: list[int] = []
    for with_headers in (False, True):
        headers = [staged_header.read(i.path, i.entry.index + 1) for i in items]
        reads.clear()
        recorder = _KeepingScp()
        for address in _serve(recorder, list(UncompressedTransferSyntaxes)):
            store = StoreAsVerified(address, COERCION, associations=3)
            for item, header in zip(items, headers, strict=True):
                store.put(item, header if with_headers else None)
            store.close()
            assert store.finish().decompressed_images == 1
        stored.append(recorder.stored)
        read_again.append(len(reads))

    assert read_again == [6, 0]
    assert stored[0] == stored[1]
    assert len(stored[1]) == 7
    assert {ds.PatientID for ds in stored[1].values()} == {"MRN-777"}
    assert _left_beside(staged) == []


def test_headers_kept_for_the_images_waiting_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `KEPT_HEADERS` images waiting, an image's header is not kept (it is read again)."""
    items = staged_copies(make_ct_study(tmp_path / "study", 3, rows=8, columns=8), tmp_path)
    monkeypatch.setattr(pacs, "KEPT_HEADERS", 2)
    sending = pacs.Sending({}, None)
    for item in items:
        sending.put(item, staged_header.read(item.path, item.entry.index + 1))

    kept = [sending.header(item) for item in items]
    assert [header is not None for header in kept] == [True, True, False]
    assert [sending.header(item) for item in items] == [None, None, None]  # given once


def test_images_put_to_be_checked_are_checked_by_the_association_before_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image put with its check is checked by the association that takes it, and filed
    from the header the check read (each header read once); the first that fails the check
    is not stored, and the storing stops with its failure."""
    recorder = _KeepingScp()
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", 8, seed=14), staged)
    bad = items[5]
    reads = count_header_reads(monkeypatch)
    check = failing_check(bad)

    for address in _serve(recorder, AllTransferSyntaxes):
        store = StoreAsVerified(address, COERCION, associations=1)
        for item in items:
            store.put(item, check=check)
        store.close()
        with pytest.raises(errors.IdentityMismatch):
            store.finish()

    assert store.stored == 5
    assert len(reads) == 5  # the check's reads only
    sops = {str(pydicom.dcmread(i.path, stop_before_pixels=True).SOPInstanceUID): i for i in items}
    assert {sops[uid].entry.index for uid in recorder.stored} == {0, 1, 2, 3, 4}
    assert {ds.PatientID for ds in recorder.stored.values()} == {"MRN-777"}
    assert _left_beside(staged) == []
