"""Orthanc with its DICOMweb plugin as the hospital PACS, the inbox's own keep (spool, index,
group commit) in this process: a WADO-RS fetch brings a whole study into the inbox, each image
kept as it would be from a C-STORE (its spool file byte for byte the data set Orthanc holds,
behind our own file meta), a part the checks refuse is counted and the rest kept, and the
plain errors when the PACS has no such study or cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from inbox_harness import kept_inbox, make_multi_series_study
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from peers.ports import free_port
from pydicom import dcmread

from sending_site import collect
from sending_site.inbox import errors
from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.settings import InboxSettings, PacsNode, PacsWeb
from sending_site.inbox.wado import Progress, fetch_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

PATIENT = {"patient_name": "WEB^ROBIN", "patient_id": "MRN-5151", "patient_birth_date": "19850102"}


def _settings(spool: Path, web_url: str) -> InboxSettings:
    return InboxSettings(
        spool=spool,
        pacs=PacsNode("ORTHANC", "127.0.0.1", 104),
        pacs_web=PacsWeb(web_url),
        pacs_timeout=30,
    )


async def _study_in_the_pacs(
    orthanc_factory: Callable[..., OrthancServer], tmp_path: Path, seed: int, **options: Any
) -> tuple[OrthancServer, list[Path], str, InboxSettings]:
    """Orthanc with DICOMweb (and `options`) holding a three-series study; the study's files
    and UID, and the inbox's settings with Orthanc's DICOMweb address."""
    study = make_multi_series_study(tmp_path / "study", seed=seed, **PATIENT)
    files = [f for series in study.values() for f in series]
    orthanc = orthanc_factory(dicomweb=True, **options)
    stored = await asyncio.to_thread(storescu, orthanc.dicom_port, [tmp_path / "study"])
    assert stored.returncode == 0, stored.stderr
    uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    return orthanc, files, uid, _settings(tmp_path / "spool", orthanc.dicomweb_url)


def _data_set_bytes(path: Path) -> bytes:
    """What follows a Part 10 file's meta: the data set as encoded."""
    raw = path.read_bytes()
    # The file meta group's length is the value of its first element (0002,0000), after DICM.
    group_length = int.from_bytes(raw[140:144], "little")
    assert dcmread(path).file_meta.FileMetaInformationGroupLength == group_length
    return raw[144 + group_length :]


async def test_a_study_fetched_over_wado_rs_is_kept_as_a_c_store_would(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    _, files, uid, settings = await _study_in_the_pacs(orthanc_factory, tmp_path, 5150)
    progress = Progress()
    async with kept_inbox(settings.spool) as (spool, index, keeper):
        retrieval = await fetch_study(settings, keeper, uid, progress)
        assert (retrieval.completed, retrieval.failed) == (len(files), 0)
        assert progress.received == len(files)
        record = await index.study(uid)
        assert record is not None
        kept = await index.study_files(uid)
        assert len(kept) == len(files)
        # Fetching again replaces each copy: still one file per image.
        again = await fetch_study(settings, keeper, uid)
        assert again.completed == len(files)
        assert sorted(p.stem for p in spool.instances.glob("*.dcm")) == sorted(
            await index.study_files(uid)
        )
        assert len(await index.study_files(uid)) == len(files)
        kept_files = [spool.path_of(i) for i in await index.study_files(uid)]
    sent = {str(dcmread(f).SOPInstanceUID): _data_set_bytes(f) for f in files}
    for path in kept_files:
        ds = dcmread(path)
        # Our own file meta (never the PACS's), the data set as the PACS holds it.
        assert ds.file_meta.ImplementationVersionName == "TRAUMARELAY"
        assert ds.file_meta.SourceApplicationEntityTitle == "ORTHANC"
        assert path.read_bytes()[:128] == b"\x00" * 128
        assert _data_set_bytes(path) == sent[str(ds.SOPInstanceUID)]


async def test_a_part_the_checks_refuse_is_counted_and_the_rest_kept(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    orthanc, files, uid, settings = await _study_in_the_pacs(orthanc_factory, tmp_path, 5152)
    # One more image of the study in the PACS, under another patient's name (the PACS keys
    # patients by record number only): keeping it would mix two patients' images.
    odd = dcmread(files[0])
    odd.PatientName = "OTHER^PERSON"
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    odd.save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    async with kept_inbox(settings.spool) as (_, index, keeper):
        first = await fetch_study(settings, keeper, uid)
        assert (first.completed, first.failed) == (len(files), 0)
        orthanc.post_json("/instances", (tmp_path / "odd.dcm").read_bytes(), "application/dicom")
        again = await fetch_study(settings, keeper, uid)
        assert (again.completed, again.failed) == (len(files), 1)
        kept = await index.study_files(uid)
    assert len(kept) == len(files)


async def test_no_such_study_and_no_pacs_say_so_and_keep_nothing(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    orthanc = orthanc_factory(dicomweb=True)
    missing = "1.2.826.0.1.3680043.8.498.1"
    async with kept_inbox(tmp_path / "spool") as (spool, index, keeper):
        with pytest.raises(errors.PacsRefused, match="no longer has this study"):
            await fetch_study(_settings(spool.root, orthanc.dicomweb_url), keeper, missing)
        down = _settings(spool.root, f"http://127.0.0.1:{free_port()}/dicom-web")
        with pytest.raises(errors.PacsUnreachable, match="could not be reached"):
            await fetch_study(down, keeper, missing)
        with pytest.raises(errors.PacsRefused, match="not a valid UID"):
            await fetch_study(_settings(spool.root, orthanc.dicomweb_url), keeper, "1.2/../x")
        assert await index.studies() == []
    assert not list(spool.instances.iterdir())


async def test_a_pacs_asking_for_a_credential_gets_the_one_in_its_file(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    orthanc, files, uid, settings = await _study_in_the_pacs(
        orthanc_factory, tmp_path, 5155, registered_users={"agent": "s3cret-pass"}
    )
    credential = tmp_path / "pacs-credential"
    credential.write_text("agent:s3cret-pass\n")
    credential.chmod(0o600)
    signed = replace(settings, pacs_web=PacsWeb(orthanc.dicomweb_url, credential))
    async with kept_inbox(settings.spool) as (_, index, keeper):
        with pytest.raises(errors.PacsRefused, match="refused no credential"):
            await fetch_study(settings, keeper, uid)
        assert await index.studies() == []
        retrieval = await fetch_study(signed, keeper, uid)
        assert (retrieval.completed, retrieval.failed) == (len(files), 0)


async def test_a_follower_gets_what_the_keep_found_in_each_image_once(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    """The push following a study takes the description the keep's checks made of each file
    (`Keeper.described`, through `SpooledStudy`) instead of parsing it again: the same as
    parsing the kept file, given once. The study fetched again, the same data sets, leaves the
    first copies, and their descriptions, as they were."""
    _, files, uid, settings = await _study_in_the_pacs(orthanc_factory, tmp_path, 5153)
    async with kept_inbox(settings.spool) as (spool, index, keeper):
        await fetch_study(settings, keeper, uid)
        first = sorted(spool.path_of(i) for i in await index.study_files(uid))
        await fetch_study(settings, keeper, uid)  # the second copies are not kept
        assert sorted(spool.path_of(i) for i in await index.study_files(uid)) == first
        assert sorted(spool.instances.glob("*.dcm")) == first
        source = SpooledStudy(settings, uid, keeper=keeper)
        try:
            arrived = await source.arrivals()
        finally:
            await source.close()
    assert len(arrived.paths) == len(files)
    assert sorted(arrived.paths) == first
    assert sorted(i.path for i in arrived.described) == sorted(arrived.paths)
    for instance in arrived.described:
        assert instance == collect.read_instance(instance.path)
        assert keeper.described(instance.path) is None  # given once
