"""STOW-RS into Orthanc's DICOMweb plugin (Debian orthanc-dicomweb), checked through Orthanc's
REST API: batches, idempotent retries (the same batch twice, and a batch whose answer is lost
on the way back), per-instance failures in plain sentences, and storing images as they are
verified (`StowAsVerified`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import aiohttp
import pydicom
import pytest
from aiohttp import web
from peers.orthanc import OrthancServer
from staged_files import count_header_reads, failing_check, staged_copies

from receiving_site import errors, stow
from receiving_site.reconcile import Coercion, Demographics
from receiving_site.stow import StowAsVerified, StowDestination, post_batch, store_to_stow
from sending_site.synthetic import make_ct_study

LOCAL = Demographics("MRN-778", "REGIONAL", "DOE^JOHN", "19790312")
COERCION = Coercion(LOCAL, datetime(2026, 12, 6, 3, 5, tzinfo=UTC), "trauma-relay", "ER")


def _stored_uids(orthanc: OrthancServer) -> list[str]:
    return sorted(
        orthanc.instance_tags(orthanc_id)["SOPInstanceUID"] for orthanc_id in orthanc.instances()
    )


@pytest.mark.asyncio
async def test_batches_reach_orthanc_unchanged(
    orthanc_factory: Callable[..., OrthancServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stow, "BATCH_IMAGES", 4)  # 10 images: batches of 4, 4 and 2
    orthanc = await asyncio.to_thread(orthanc_factory, dicomweb=True)
    files = make_ct_study(tmp_path / "study", 10, seed=31)
    items = staged_copies(files, tmp_path / "staged")
    progress: list[int] = []

    delivery = await store_to_stow(
        items,
        StowDestination(orthanc.dicomweb_url),
        on_stored=lambda done, _total: progress.append(done),
    )

    assert (delivery.stored, delivery.decompressed_images) == (10, 0)
    assert progress == [4, 8, 10]
    assert _stored_uids(orthanc) == sorted(i.entry.sop_instance_uid for i in items)
    for path in files:
        original = pydicom.dcmread(path)
        orthanc_id = orthanc.find_by_sop_instance_uid(str(original.SOPInstanceUID))
        assert orthanc_id is not None
        ds = pydicom.dcmread(BytesIO(orthanc.instance_file(orthanc_id)))
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID) == (
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
            original.PatientID,
        )
        assert ds.PixelData == original.PixelData


@pytest.mark.asyncio
async def test_the_same_batch_posted_twice_leaves_no_duplicates(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    orthanc = await asyncio.to_thread(orthanc_factory, dicomweb=True)
    items = staged_copies(make_ct_study(tmp_path / "study", 5, seed=32), tmp_path / "staged")
    destination = StowDestination(orthanc.dicomweb_url)
    files = [i.path for i in items]

    async with aiohttp.ClientSession() as session:
        first = await post_batch(session, destination, items, files, len(items))
        again = await post_batch(session, destination, items, files, len(items))

    assert (first, again) == ([], [])  # both answers say every instance is stored
    assert _stored_uids(orthanc) == sorted(i.entry.sop_instance_uid for i in items)
    assert len(orthanc.studies()) == 1


@pytest.mark.asyncio
async def test_a_batch_whose_answer_is_lost_is_posted_again_without_duplicates(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """A proxy hands the first POST to Orthanc, which stores it, then cuts the connection
    before the answer gets back: the sender cannot know, posts the same batch again, and
    Orthanc ends with each instance once."""
    orthanc = await asyncio.to_thread(orthanc_factory, dicomweb=True)
    items = staged_copies(make_ct_study(tmp_path / "study", 6, seed=33), tmp_path / "staged")
    posts: list[int] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                orthanc.dicomweb_url + "/studies",
                data=body,
                headers={
                    "Content-Type": request.headers["Content-Type"],
                    "Accept": "application/dicom+json",
                },
            ) as answer,
        ):
            payload = await answer.read()
            posts.append(answer.status)
            if len(posts) == 1:
                assert request.transport is not None
                request.transport.close()  # Orthanc stored them; the answer is lost
                return web.Response()
            return web.Response(
                status=answer.status, body=payload, content_type="application/dicom+json"
            )

    app = web.Application()
    app.router.add_post("/dicom-web/studies", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        destination = StowDestination(f"http://127.0.0.1:{port}/dicom-web")
        delivery = await store_to_stow(items, destination)
    finally:
        await runner.cleanup()

    assert delivery.stored == 6
    assert posts == [200, 200]  # the first answer never reached the sender
    assert _stored_uids(orthanc) == sorted(i.entry.sop_instance_uid for i in items)


@pytest.mark.asyncio
async def test_an_instance_the_server_refuses_is_named_in_a_sentence(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    orthanc = await asyncio.to_thread(orthanc_factory, dicomweb=True)
    files = make_ct_study(tmp_path / "study", 3, seed=34)
    items = staged_copies(files, tmp_path / "staged")
    # The third file is not DICOM at all: the server cannot read it.
    items[2].path.write_bytes(b"\x00" * 128 + b"DICM" + b"not a data set")

    with pytest.raises(errors.PacsRefused) as refused:
        await store_to_stow(items, StowDestination(orthanc.dicomweb_url))

    message = refused.value.message
    assert "did not store every image" in message
    assert "Image 3 of 3 " in message
    assert "Image 1 " not in message
    assert "2 images were stored" in message
    assert len(orthanc.instances()) == 2


def test_a_url_with_a_secret_or_query_is_refused() -> None:
    for url in (
        "https://user:pw@pacs/dicom-web",
        "https://pacs/dicom-web?token=x",
        "ftp://pacs/dicom-web",
        "pacs/dicom-web",
    ):
        with pytest.raises(errors.BadStowAddress):
            StowDestination(url)
    assert StowDestination("https://pacs.local/dicom-web/").studies_url == (
        "https://pacs.local/dicom-web/studies"
    )


def test_the_credential_file_gives_bearer_or_basic(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc.def.ghi\n")
    basic = tmp_path / "basic"
    basic.write_text("trauma:secret\n")
    assert StowDestination("https://p/dw", token).headers() == {
        "Authorization": "Bearer abc.def.ghi"
    }
    assert StowDestination("https://p/dw", basic).headers() == {
        "Authorization": "Basic dHJhdW1hOnNlY3JldA=="
    }
    assert StowDestination("https://p/dw").headers() == {}


def _left_beside(folder: Path) -> list[str]:
    """Files in the staging folder other than the staged images: copies left behind."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".dcm")


def test_images_are_stored_as_they_are_put_before_the_last_arrives(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """Each image put is posted without waiting for the rest: the first ones are in Orthanc
    before the last is put; all arrive filed under the local patient with their pixels, and
    no copy is left beside the staged files."""
    orthanc = orthanc_factory(dicomweb=True)
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", 12, seed=35), staged)
    counts: list[tuple[int, int]] = []
    first_ones_stored = threading.Event()

    def on_stored(done: int, total: int) -> None:
        counts.append((done, total))
        if done == len(items) - 1:
            first_ones_stored.set()

    store = StowAsVerified(StowDestination(orthanc.dicomweb_url), COERCION, on_stored)
    for item in items[:-1]:
        store.put(item)
    assert first_ones_stored.wait(120), "the images put were not stored while the last waited"
    in_orthanc_before_the_last = len(orthanc.instances())
    store.put(items[-1])
    store.close()
    delivery = store.finish()

    assert in_orthanc_before_the_last == len(items) - 1
    assert (delivery.stored, delivery.decompressed_images) == (len(items), 0)
    assert counts[-1] == (len(items), len(items))
    assert [done for done, _ in counts] == sorted(done for done, _ in counts)
    assert _stored_uids(orthanc) == sorted(i.entry.sop_instance_uid for i in items)
    for item in items:
        original = pydicom.dcmread(item.path)
        orthanc_id = orthanc.find_by_sop_instance_uid(str(original.SOPInstanceUID))
        assert orthanc_id is not None
        ds = pydicom.dcmread(BytesIO(orthanc.instance_file(orthanc_id)))
        assert (ds.PatientID, ds.IssuerOfPatientID, ds.PatientName) == (
            "MRN-778",
            "REGIONAL",
            "DOE^JOHN",
        )
        assert ds.OtherPatientIDsSequence[-1].PatientID == original.PatientID
        assert ds.PixelData == original.PixelData
    assert _left_beside(staged) == []


def test_an_image_that_fails_its_check_stops_the_storing(
    orthanc_factory: Callable[..., OrthancServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An image put with its check is checked by the thread that posts it, and filed from the
    header the check read; the first that fails is not stored, the storing stops with its
    failure, and `stored` is what Orthanc has."""
    orthanc = orthanc_factory(dicomweb=True)
    staged = tmp_path / "staged"
    items = staged_copies(make_ct_study(tmp_path / "study", 8, seed=36), staged)
    bad = items[5]
    reads = count_header_reads(monkeypatch)
    check = failing_check(bad)

    store = StowAsVerified(StowDestination(orthanc.dicomweb_url), COERCION)
    for item in items:
        store.put(item, check=check)
    store.close()
    with pytest.raises(errors.IdentityMismatch):
        store.finish()

    in_orthanc = _stored_uids(orthanc)
    assert bad.entry.sop_instance_uid not in in_orthanc
    assert set(in_orthanc) <= {i.entry.sop_instance_uid for i in items[:5]}
    assert store.stored == len(in_orthanc)
    assert len(reads) <= 6  # the checks' reads only: each image's header read once
    assert _left_beside(staged) == []


def test_an_image_the_server_refuses_as_they_arrive_is_named(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    orthanc = orthanc_factory(dicomweb=True)
    items = staged_copies(make_ct_study(tmp_path / "study", 4, seed=37), tmp_path / "staged")
    items[3].path.write_bytes(b"\x00" * 128 + b"DICM" + b"not a data set")

    store = StowAsVerified(StowDestination(orthanc.dicomweb_url), listed=10)
    for item in items:
        store.put(item)
    store.close()
    with pytest.raises(errors.PacsRefused) as refused:
        store.finish()

    message = refused.value.message
    assert "Image 4 of 10 " in message  # of the images the study lists, not of those put
    assert "Image 1 " not in message
    assert store.stored == len(orthanc.instances()) == 3
