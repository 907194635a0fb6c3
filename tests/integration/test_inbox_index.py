"""The inbox index on a real SQLite file: counts as images arrive, refusals that change
nothing, resends that replace, the schema's version, and what a crash left behind."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sqlite3
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from inbox_harness import JANE, an_arrival

from sending_site.inbox import errors
from sending_site.inbox.arrival import Arrival, Refusal, part10_header
from sending_site.inbox.index import InboxIndex, Kept, schema_steps
from sending_site.inbox.records import RefusedImages
from sending_site.inbox.service import adopt_unindexed
from sending_site.inbox.spool import Spool, new_id
from sending_site.synthetic import make_ct_study

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _arrival(series: int, instance: int, at: float, **changes: object) -> Arrival:
    """Instance `instance` of series `series` of study 1.2.3, arriving at `at`."""
    values: dict[str, object] = {
        "instance_id": new_id(),
        "sop_instance_uid": f"1.2.3.{series}.{instance}",
        "series_instance_uid": f"1.2.3.{series}",
        "series_number": series,
        "series_description": f"SERIES {series}",
        "instance_number": instance,
        "slice_thickness_mm": float(series),
        "arrived_at": at,
    }
    return an_arrival(**(values | changes))


@pytest.mark.asyncio
async def test_images_are_counted_per_series_as_they_arrive(tmp_path: Path) -> None:
    index = await InboxIndex.open(tmp_path / "index.sqlite3")
    try:
        arrivals = [_arrival(s, i, 100.0 + 10 * s + i) for s in (2, 1) for i in (3, 1, 2)]
        for a in arrivals:
            assert await index.record(a) == Kept()
        study = await index.study("1.2.3")
        assert study is not None
        assert [(s.series_number, s.instances) for s in study.series] == [(1, 3), (2, 3)]
        assert study.instances == 6
        assert (study.first_arrival, study.last_arrival) == (111.0, 123.0)
        assert [s.thinnest_slice_mm for s in study.series] == [1.0, 2.0]
        in_order = [f"1.2.3.{s}.{i}" for s in (1, 2) for i in (1, 2, 3)]
        by_id = {a.instance_id: a.sop_instance_uid for a in arrivals}
        assert [by_id[f] for f in await index.study_files("1.2.3")] == in_order

        (listing,) = await index.studies()
        assert (listing.series, listing.instances, listing.last_arrival) == (2, 6, 123.0)
        assert await index.studies("doe") == [listing]
        assert await index.studies("ER-1") == [listing]
        assert await index.studies("A0000") == [listing]
        assert await index.studies("smith") == []
        assert await index.studies("%") == []  # a LIKE wildcard is a character like any other
    finally:
        await index.close()


@pytest.mark.asyncio
async def test_a_resend_replaces_and_a_conflict_changes_nothing(tmp_path: Path) -> None:
    index = await InboxIndex.open(tmp_path / "index.sqlite3")
    try:
        first = _arrival(1, 1, 100.0)
        assert await index.record(first) == Kept()
        again = _arrival(1, 1, 200.0)
        assert await index.record(again) == Kept(replaced=first.instance_id)
        assert await index.study_files("1.2.3") == [again.instance_id]

        other_patient = _arrival(1, 2, 300.0, patient=replace(JANE, name="DOE^JOHN"))
        moved = _arrival(1, 1, 300.0, series_instance_uid="1.2.3.9", series_number=9)
        for refused in (other_patient, moved):
            outcome = await index.record(refused)
            assert isinstance(outcome, Refusal)
        assert await index.study_files("1.2.3") == [again.instance_id]
        study = await index.study("1.2.3")
        assert study is not None
        assert study.last_arrival == 200.0
        assert [s.series_number for s in study.series] == [1]
    finally:
        await index.close()


@pytest.mark.asyncio
async def test_a_resend_of_the_same_data_set_leaves_the_first_copy_and_a_changed_one_replaces(
    tmp_path: Path,
) -> None:
    """With the spool's comparison: a copy whose data set is byte for byte the one indexed
    (sent by another AE, so its file meta differs) keeps the first file, its own the unused
    one, and counts as an arrival; a different data set replaces the first."""
    spool = Spool.open(tmp_path / "spool")
    index = await InboxIndex.open(spool.index)
    try:
        copies = {}
        for name, source, data_set in (
            ("first", "HOSPITALPACS", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"),
            ("same", "MODALITY", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"),
            ("changed", "HOSPITALPACS", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192"),
        ):
            copies[name] = _arrival(1, 1, 100.0 + len(copies) * 100)
            header = part10_header(CT, copies[name].sop_instance_uid, EXPLICIT_LE, source)
            spool.path_of(copies[name].instance_id).write_bytes(header + data_set)
        compare = spool.same_data_set
        assert await index.record(copies["first"], same=compare) == Kept()
        same = await index.record(copies["same"], same=compare)
        assert same == Kept(replaced=copies["same"].instance_id)
        assert await index.study_files("1.2.3") == [copies["first"].instance_id]
        study = await index.study("1.2.3")
        assert study is not None
        assert study.last_arrival == 200.0  # the study is still being sent
        changed = await index.record(copies["changed"], same=compare)
        assert changed == Kept(replaced=copies["first"].instance_id)
        assert await index.study_files("1.2.3") == [copies["changed"].instance_id]
    finally:
        await index.close()


def test_a_copy_with_a_damaged_file_meta_is_not_the_same(tmp_path: Path) -> None:
    """Whatever pydicom raises on a damaged file meta, the copies are not the same (and the
    comparison raises nothing: it runs at every arrival of an image kept before, and at
    start)."""
    spool = Spool.open(tmp_path / "spool")
    good, *damaged = (new_id() for _ in range(4))
    whole = part10_header(CT, "1.2.3.1.1", EXPLICIT_LE, "PACS") + b"\x08\x00\x05\x00CS\x00\x00"
    spool.path_of(good).write_bytes(whole)
    for instance_id, data in zip(
        damaged, (whole[:153], whole[:140], b"\x00" * 128 + b"DICM" + b"\xff" * 30), strict=True
    ):
        spool.path_of(instance_id).write_bytes(data)
        assert not spool.same_data_set(good, instance_id)
        assert not spool.same_data_set(instance_id, good)


@pytest.mark.asyncio
async def test_a_batch_is_indexed_only_after_what_must_come_first_and_on_its_thread(
    tmp_path: Path,
) -> None:
    """The group commit flushes the spool folder in the same hand-off to a thread as the
    index transaction, before it: a flush that fails indexes nothing."""
    index = await InboxIndex.open(tmp_path / "index.sqlite3")
    seen: list[tuple[str, list[str]]] = []

    def flush() -> None:
        seen.append((threading.current_thread().name, _indexed_files(tmp_path)))

    def failing_flush() -> None:
        raise OSError("the disk is gone")

    try:
        first, second = _arrival(1, 1, 100.0), _arrival(1, 2, 110.0)
        assert await index.record_all([first], first=flush) == [Kept()]
        assert seen[0][0] != threading.current_thread().name
        assert seen[0][1] == []  # the flush came before the row
        with pytest.raises(OSError, match="the disk is gone"):
            await index.record_all([second], first=failing_flush)
        assert await index.study_files("1.2.3") == [first.instance_id]
    finally:
        await index.close()


def _indexed_files(folder: Path) -> list[str]:
    db = sqlite3.connect(f"{(folder / 'index.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT file FROM instances")]
    finally:
        db.close()


@pytest.mark.asyncio
async def test_one_batch_decides_each_image_as_one_at_a_time_would(tmp_path: Path) -> None:
    """A group commit's batch: a resend inside the batch replaces the copy before it, and a
    refused image between kept ones changes nothing but its own outcome."""
    index = await InboxIndex.open(tmp_path / "index.sqlite3")
    try:
        first = _arrival(1, 1, 100.0)
        refused = _arrival(1, 2, 150.0, patient=replace(JANE, name="DOE^JOHN"))
        again = _arrival(1, 1, 200.0)
        other = _arrival(2, 1, 250.0)
        outcomes = await index.record_all([first, refused, again, other])
        assert outcomes[0] == Kept()
        assert isinstance(outcomes[1], Refusal)
        assert outcomes[2:] == [Kept(replaced=first.instance_id), Kept()]
        assert await index.study_files("1.2.3") == [again.instance_id, other.instance_id]
    finally:
        await index.close()
    # Committed: another connection sees it once the writer is closed.
    index = await InboxIndex.open(tmp_path / "index.sqlite3", read_only=True)
    try:
        assert await index.study_files("1.2.3") == [again.instance_id, other.instance_id]
        with pytest.raises(RuntimeError, match="read-only"):
            await index.record(first)
    finally:
        await index.close()


@pytest.mark.asyncio
async def test_the_schema_version_is_kept_and_a_newer_index_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    await (await InboxIndex.open(path)).close()
    latest = schema_steps()[-1][0]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (latest,)
        db.execute(f"PRAGMA user_version = {latest + 1}")
    with pytest.raises(errors.IndexTooNew):
        await InboxIndex.open(path)
    with pytest.raises(errors.StudyNotSpooled):
        await InboxIndex.open(tmp_path / "missing.sqlite3", read_only=True)


@pytest.mark.asyncio
async def test_files_kept_before_a_crash_are_indexed_and_damaged_ones_deleted(
    tmp_path: Path,
) -> None:
    spool = Spool.open(tmp_path / "spool")
    good = [spool.path_of(new_id()) for _ in range(2)]
    for source, target in zip(make_ct_study(tmp_path / "study", 2, seed=77), good, strict=True):
        shutil.copy(source, target)
    damaged = spool.path_of(new_id())
    damaged.write_bytes(good[0].read_bytes()[:700])
    (spool.incoming / f"{new_id()}.part").write_bytes(b"half an image")
    spool = Spool.open(spool.root)  # a restart clears incoming/
    assert list(spool.incoming.iterdir()) == []
    index = await InboxIndex.open(spool.index)
    try:
        assert await adopt_unindexed(spool, index) == 2
        assert set(await index.indexed_files()) == {p.stem for p in good}
        assert not damaged.exists()
        assert await adopt_unindexed(spool, index) == 0
        again = spool.path_of(new_id())  # a second copy of an image, kept but not indexed
        shutil.copy(good[0], again)
        assert await adopt_unindexed(spool, index) == 0
        assert (again.exists(), good[0].exists()) == (False, True)
        assert set(await index.indexed_files()) == {p.stem for p in good}
    finally:
        await index.close()


def _version_1_index(path: Path) -> None:
    """An index as the agent before refused images were recorded left it: one study of
    JANE's, one image."""
    first_step = schema_steps()[0]
    assert first_step[0] == 1
    db = sqlite3.connect(path)
    try:
        db.executescript(first_step[1])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO patients VALUES (1, 'ER-1', 'ER-GENERAL', 'DOE^JANE', '19850214', 'F')"
        )
        db.execute(
            "INSERT INTO studies VALUES (1, '1.2.3', 1, 'A000001', '20250101', '031500', "
            "'CT TRAUMA', 100.0, 100.0)"
        )
        db.execute("INSERT INTO series VALUES (1, '1.2.3.1', 1, 'CT', 1, 'SERIES 1', 1.0)")
        db.execute(
            "INSERT INTO instances VALUES (1, '1.2.3.1.1', 1, ?, ?, 1, ?, 1000, 100.0, 'CT1')",
            (CT, EXPLICIT_LE, "a" * 32),
        )
        db.commit()
    finally:
        db.close()


@pytest.mark.asyncio
async def test_an_index_from_before_refused_images_were_recorded_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    """An existing agent's index (version 1) is read as it was beside an agent not upgraded
    yet (no refusal recorded), then upgraded at the agent's start: its study and image stay,
    an image naming another patient under that study is recorded as refused (once, however
    often it is sent again; nothing of whom it named), and no longer once it is sent again
    corrected. Other refusals are not recorded as of another patient."""
    path = tmp_path / "index.sqlite3"
    _version_1_index(path)
    before = await InboxIndex.open(path, read_only=True)
    try:
        study = await before.study("1.2.3")
        assert study is not None
        assert (study.instances, study.refused) == (1, None)
    finally:
        await before.close()

    index = await InboxIndex.open(path)
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (schema_steps()[-1][0],)
        assert await index.study_files("1.2.3") == ["a" * 32]
        (listing,) = await index.studies()
        assert (listing.patient, listing.instances) == (JANE, 1)

        john = replace(JANE, patient_id="ER-2", name="DOE^JOHN", sex="M")
        for at, source in ((200.0, "CT1"), (300.0, "PACS")):  # sent again: still one image
            refused = await index.record(_arrival(1, 2, at, patient=john, calling_ae_title=source))
            assert isinstance(refused, Refusal)
            assert refused.another_patient
        also = await index.record(_arrival(2, 1, 350.0, patient=john, calling_ae_title="CT1"))
        assert isinstance(also, Refusal)
        refused_elsewhere = await index.record(
            _arrival(1, 1, 400.0, series_instance_uid="1.2.3.9", series_number=9)
        )
        assert isinstance(refused_elsewhere, Refusal)
        assert not refused_elsewhere.another_patient
        study = await index.study("1.2.3")
        assert study is not None
        assert study.instances == 1
        assert study.refused == RefusedImages(2, ("CT1", "PACS"), 350.0)
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            assert db.execute("SELECT name FROM patients").fetchall() == [("DOE^JANE",)]
            dumped = "\n".join(db.iterdump())
        assert "JOHN" not in dumped
        assert "ER-2" not in dumped

        assert await index.study_files("1.2.3") == ["a" * 32]  # nothing refused is sent
        corrected = _arrival(1, 2, 500.0)
        assert await index.record(corrected) == Kept()
        study = await index.study("1.2.3")
        assert study is not None
        assert study.instances == 2
        assert study.refused == RefusedImages(1, ("CT1",), 350.0)
        assert await index.study_files("1.2.3") == ["a" * 32, corrected.instance_id]
    finally:
        await index.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("read_only", [True, False])
async def test_an_open_stopped_part_way_leaves_no_connection_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool
) -> None:
    """A page closed or a push job cancelled while the index is being opened: the connection
    opened so far is closed, not left for the garbage collector (which warns, and keeps the
    file open until it runs)."""
    spool = Spool.open(tmp_path / "spool")
    await (await InboxIndex.open(spool.index)).close()
    executed = aiosqlite.Connection.execute

    def stopped_at_foreign_keys(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        if sql == "PRAGMA foreign_keys=ON":
            raise asyncio.CancelledError
        return executed(self, sql, *args)

    monkeypatch.setattr(aiosqlite.Connection, "execute", stopped_at_foreign_keys)
    with pytest.raises(asyncio.CancelledError):
        await InboxIndex.open(spool.index, read_only=read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
