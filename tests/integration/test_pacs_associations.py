"""C-STORE over several associations at once, each reused for many images, into a real
pynetdicom Storage SCP that records which association carried each image. The SCP holds each
association's first image until `PARALLEL` associations are all inside a C-STORE together: only
associations that really run side by side get past it (a broken wait fails the store). It holds
their second images so too, so that each association is given a second image however the
threads are scheduled (a slow one is not left without, the others having taken the rest)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, evt
from staged_files import staged_copies

from receiving_site import errors
from receiving_site.pacs import PacsAddress, store_to_pacs
from sending_site.synthetic import make_ct_study

PARALLEL = 3
IMAGES = 30
WAIT = 120.0  # seconds the SCP waits for the other associations: generous, never asserted


class _ParallelScp:
    """Records (association id, SOP Instance UID) of every C-STORE; the first and the second
    C-STORE on each association wait at a barrier of `PARALLEL`."""

    def __init__(self, status: int = 0x0000) -> None:
        self.stores: list[tuple[int, str]] = []
        self.status = status
        self._barrier = threading.Barrier(PARALLEL, timeout=WAIT)
        self._seen: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.broken = False

    def handle(self, event: Any) -> int:
        key = id(event.assoc)
        with self._lock:
            self._seen[key] += 1
            held = self._seen[key] <= 2
        if held:
            try:
                self._barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
                return 0xC211
        with self._lock:
            self.stores.append((key, str(event.request.AffectedSOPInstanceUID)))
        return self.status


@pytest.fixture
def scp() -> Iterator[tuple[_ParallelScp, PacsAddress]]:
    recorder = _ParallelScp()
    ae = AE(ae_title="PARALLEL-SCP")
    ae.maximum_associations = 16
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, AllTransferSyntaxes)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, recorder.handle)]
    )
    try:
        yield recorder, PacsAddress("PARALLEL-SCP", "127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()


def test_images_go_over_several_associations_at_once_each_reused(
    scp: tuple[_ParallelScp, PacsAddress], tmp_path: Path
) -> None:
    recorder, address = scp
    items = staged_copies(make_ct_study(tmp_path / "study", IMAGES, seed=5), tmp_path / "staged")
    progress: list[int] = []

    delivery = store_to_pacs(
        items, address, on_stored=lambda done, _total: progress.append(done), associations=3
    )

    assert delivery.stored == IMAGES
    assert not recorder.broken
    assert sorted(uid for _, uid in recorder.stores) == sorted(
        i.entry.sop_instance_uid for i in items
    )
    per_association = Counter(key for key, _ in recorder.stores)
    assert len(per_association) == PARALLEL
    assert all(count >= 2 for count in per_association.values())  # each reused
    assert progress == list(range(1, IMAGES + 1))  # one call at a time, counting up


def test_one_association_is_not_enough_for_that_scp(
    scp: tuple[_ParallelScp, PacsAddress], tmp_path: Path
) -> None:
    # The check above can fail: a single association never gets past the SCP's wait.
    recorder, address = scp
    recorder._barrier = threading.Barrier(PARALLEL, timeout=2.0)
    items = staged_copies(make_ct_study(tmp_path / "study", 4, seed=6), tmp_path / "staged")
    with pytest.raises(errors.PacsRefused, match="refused image 1"):
        store_to_pacs(items, address, associations=1)
    assert recorder.broken


def test_the_first_refusal_stops_every_association(tmp_path: Path) -> None:
    recorder = _ParallelScp(status=0xA700)  # out of resources, after the wait
    ae = AE(ae_title="FULL-SCP")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, AllTransferSyntaxes)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, recorder.handle)]
    )
    try:
        address = PacsAddress("FULL-SCP", "127.0.0.1", server.server_address[1])
        items = staged_copies(make_ct_study(tmp_path / "study", 12, seed=7), tmp_path / "staged")
        with pytest.raises(errors.PacsRefused, match=r"status 0xA700"):
            store_to_pacs(items, address, associations=PARALLEL)
    finally:
        server.shutdown()
    # Each association stops at its first refusal: no image is tried after it.
    assert len(recorder.stores) == PARALLEL
