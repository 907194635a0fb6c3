"""A spooled study as a push follows it (`sending_site.inbox.follow.SpooledStudy`), over a real
index on SQLite, with the time passed in: each image named once, in the order the index keeps
them; complete once none has arrived for the stable age; stopped by staff, or once the time
given to follow it is up; a deposited report is a new arrival of the study like any image; with
the inbox's keeper in the process, a follower waiting for images wakes when one is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio
from inbox_harness import an_arrival

from sending_site.agent import jobs as jobs_module
from sending_site.inbox import errors
from sending_site.inbox.deposit import deposit
from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.settings import InboxSettings
from sending_site.inbox.spool import Spool
from sending_site.report import encapsulated_pdf
from sending_site.source import Arrivals
from sending_site.synthetic import make_ct_study

T0 = 1_800_000_000.0
STABLE = 30.0
A, B = "a" * 32, "b" * 32


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def index(tmp_path: Path) -> AsyncIterator[InboxIndex]:
    spool = Spool.open(tmp_path / "spool")
    opened = await InboxIndex.open(spool.index)
    try:
        yield opened
    finally:
        await opened.close()


def _source(tmp_path: Path, clock: Clock, **options: float) -> SpooledStudy:
    settings = InboxSettings(spool=tmp_path / "spool", stable_after=STABLE)
    return SpooledStudy(settings, "1.2.3", clock=clock, poll=0.01, **options)


@pytest.mark.asyncio
async def test_each_image_is_named_once_and_the_study_is_complete_once_stable(
    tmp_path: Path, index: InboxIndex
) -> None:
    clock, spool = Clock(), Spool(tmp_path / "spool")
    await index.record(an_arrival(instance_id=A, arrived_at=T0))
    source = _source(tmp_path, clock)
    try:
        assert await source.arrivals() == Arrivals((spool.path_of(A),), complete=False)
        assert await source.arrivals() == Arrivals((), complete=False)
        clock.now = T0 + 10
        second = an_arrival(instance_id=B, sop_instance_uid="1.2.3.4.2", arrived_at=T0 + 10)
        await index.record(second)
        assert await source.arrivals() == Arrivals((spool.path_of(B),), complete=False)
        clock.now = T0 + 10 + STABLE - 1
        assert await source.arrivals() == Arrivals((), complete=False)
        clock.now = T0 + 10 + STABLE
        assert await source.arrivals() == Arrivals((), complete=True)
    finally:
        await source.close()


@pytest.mark.asyncio
async def test_staff_stopping_and_the_time_to_follow_running_out_stop_it(
    tmp_path: Path, index: InboxIndex
) -> None:
    clock, spool = Clock(), Spool(tmp_path / "spool")
    await index.record(an_arrival(instance_id=A, arrived_at=T0))
    stopped = _source(tmp_path, clock)
    limited = _source(tmp_path, clock, follow_for=5.0)
    try:
        stopped.stop()
        assert await stopped.arrivals() == Arrivals(
            (spool.path_of(A),), complete=False, stopped=True
        )
        assert await limited.arrivals() == Arrivals((spool.path_of(A),), complete=False)
        clock.now = T0 + 5
        assert await limited.arrivals() == Arrivals((), complete=False, stopped=True)
    finally:
        await stopped.close()
        await limited.close()


@pytest.mark.asyncio
async def test_a_study_the_inbox_does_not_hold_is_said_so(
    tmp_path: Path, index: InboxIndex
) -> None:
    source = _source(tmp_path, Clock())
    try:
        with pytest.raises(errors.StudyNotSpooled):
            await source.arrivals()
    finally:
        await source.close()


@pytest.mark.asyncio
async def test_a_deposited_report_arrives_in_its_study(tmp_path: Path, index: InboxIndex) -> None:
    clock, spool = Clock(), Spool(tmp_path / "spool")
    await index.record(an_arrival(instance_id=A, arrived_at=T0))
    source = _source(tmp_path, clock)
    try:
        await source.arrivals()
        study = await index.study("1.2.3")
        assert study is not None
        pdf = b"%PDF-1.4\n%%EOF\n"
        kept = await deposit(spool, index, encapsulated_pdf(pdf, study, datetime.now()), T0 + 1)
        assert kept.parent == spool.instances
        assert await source.arrivals() == Arrivals((kept,), complete=False)
        after = await index.study("1.2.3")
        assert after is not None
        assert after.instances == 2
        assert [s.modality for s in after.series] == ["CT", "DOC"]
        assert list(spool.incoming.iterdir()) == []
    finally:
        await source.close()


@pytest.mark.asyncio
async def test_a_follower_wakes_when_the_keeper_keeps_an_image_not_at_its_next_poll(
    tmp_path: Path, index: InboxIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting with nothing new, a follower beside the keeper returns once the keeper's group
    commit indexes an image, although its poll and stable age are an hour: before, a following push
    saw a new image only at its next poll. The image is kept once the follower has read the
    index and begun its wait, however long that takes: kept before, it would be read, not waited
    for."""
    spool = Spool(tmp_path / "spool")
    keeper = Keeper(spool, index, asyncio.get_running_loop())
    first, second = (f.read_bytes() for f in make_ct_study(tmp_path / "ct", 2, rows=16, columns=16))
    settings = InboxSettings(spool=tmp_path / "spool", stable_after=3600.0)
    kept = await asyncio.to_thread(keeper.keep_file, first, "SCANNER")
    assert kept == (0, "")
    (study,) = [s.study_instance_uid for s in await index.studies()]
    source = SpooledStudy(settings, study, poll=3600.0, keeper=keeper)
    began_waiting = asyncio.Event()
    wait = source._either

    async def noted_wait(seconds: float, woken_by: asyncio.Event | None) -> None:
        began_waiting.set()
        await wait(seconds, woken_by)

    monkeypatch.setattr(source, "_either", noted_wait)
    try:
        assert len((await source.arrivals()).paths) == 1
        assert not began_waiting.is_set()  # the first call found an image: it did not wait
        waiting = asyncio.ensure_future(source.arrivals())
        # It reads the index, finds nothing new and waits.
        await asyncio.wait_for(began_waiting.wait(), 120)
        assert not waiting.done()
        assert await asyncio.to_thread(keeper.keep_file, second, "SCANNER") == (0, "")
        # Bounded only so a regression fails instead of hanging: the poll is an hour.
        assert await asyncio.wait_for(waiting, 120) == Arrivals((), complete=False)
        again = await source.arrivals()
        assert len(again.paths) == 1
        assert not again.complete
    finally:
        await source.close()


@pytest.mark.asyncio
async def test_a_settled_study_is_not_told_as_still_arriving_while_its_images_upload(
    tmp_path: Path, index: InboxIndex
) -> None:
    """A study whose images all arrived a while ago: the answer naming them says it has
    settled, and the ER console's job stops saying images are still arriving (and offering
    to stop waiting, which would mark a whole study incomplete) while they upload; it is
    complete only at the next answer. An image arriving later makes it arriving again."""
    clock, spool = Clock(), Spool(tmp_path / "spool")
    await index.record(an_arrival(instance_id=A, arrived_at=T0))
    clock.now = T0 + STABLE + 5
    source = _source(tmp_path, clock)
    job = jobs_module.Job(jobs_module.new_job("1.2.3", "county-trauma", "nurse", T0))
    watched = jobs_module._Watched(job, source)
    try:
        assert job.arriving
        assert await watched.arrivals() == Arrivals((spool.path_of(A),), False, settled=True)
        assert not job.arriving
        second = an_arrival(instance_id=B, sop_instance_uid="1.2.3.4.2", arrived_at=clock.now)
        await index.record(second)
        assert await watched.arrivals() == Arrivals((spool.path_of(B),), complete=False)
        assert job.arriving
        clock.now += STABLE
        assert await watched.arrivals() == Arrivals((), complete=True)
        assert not job.arriving
        assert not job.stopped
    finally:
        await source.close()
