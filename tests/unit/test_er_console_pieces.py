"""Pure pieces of the sending agent and its ER console: the inbox's settings drawn from the
agent's one settings system, the PACS search form, the words of progress and readiness, and
the push jobs kept on disk, and the code secret the agent keeps stretched ahead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from sending_site import journal
from sending_site.agent import jobs as jobs_module
from sending_site.agent.jobs import PushJobs, PushSetup, jobs_folder, new_job, start_push
from sending_site.console.pacs_pages import query_of
from sending_site.console.words import (
    moved_on,
    percent,
    progress_words,
    readiness,
    study_words,
)
from sending_site.errors import AlreadySent, Said
from sending_site.inbox.completeness import assess
from sending_site.inbox.errors import QueryInvalid
from sending_site.inbox.records import SeriesRecord, StudyRecord
from sending_site.inbox.settings import InboxSettings, PacsNode
from sending_site.push import Progress, PushRequest, Retrying
from sending_site.settings import SenderSettings, inbox_settings
from sending_site.stretching import SpareSecret
from site_agent.client import RelayRefused, RelayUnreachable
from site_agent.credential import AgentCredential
from site_agent.settings import load
from transfer_codes.keys import stretch_code
from transfer_codes.wire import Problem

JANE = ("ER-1", "ER-GENERAL", "DOE^JANE", "19850214", "F")


def _settings(*assignments: str) -> SenderSettings:
    return load(
        SenderSettings,
        "TRAUMA_RELAY_SENDER",
        environ={},
        assignments=("relay.url=http://127.0.0.1:9", *assignments),
    )


def test_the_inbox_takes_its_settings_from_the_agent() -> None:
    settings = inbox_settings(
        _settings(
            "dicom.ae_title=ERNODE",
            "dicom.listen=127.0.0.1:11999",
            "spool.folder=/srv/spool",
            "spool.stable_age=45s",
            "pacs.ae_title=HOSPACS",
            "pacs.host=pacs.local",
            "pacs.port=4242",
        )
    )
    assert (settings.ae_title, settings.host, settings.port) == ("ERNODE", "127.0.0.1", 11999)
    assert settings.spool == Path("/srv/spool")
    assert settings.stable_after == 45.0
    assert settings.pacs == PacsNode("HOSPACS", "pacs.local", 4242)


def test_no_pacs_host_means_no_pacs() -> None:
    assert inbox_settings(_settings()).pacs is None


@pytest.mark.parametrize(
    ("form", "by"),
    [
        (("MRN-1", "", "", ""), "medical record number"),
        (("", "ACC-1", "", ""), "accession number"),
        (("", "", "Doe, Jane", "1985-02-14"), "name and birth date"),
        (("MRN-1", "ACC-1", "", ""), "medical record number"),  # the first way filled in
    ],
)
def test_the_pacs_form_searches_one_way(form: tuple[str, str, str, str], by: str) -> None:
    query, said = query_of(*form)
    assert said == by
    assert query.identifier().QueryRetrieveLevel == "STUDY"


@pytest.mark.parametrize(
    "form", [("", "", "", ""), ("", "", "Doe, Jane", ""), ("", "", "", "1985")]
)
def test_a_pacs_form_filled_in_no_whole_way_is_refused(form: tuple[str, str, str, str]) -> None:
    with pytest.raises(QueryInvalid):
        query_of(*form)


def test_progress_words() -> None:
    assert progress_words(None, upload_finished=True) == "Upload complete."
    assert progress_words(None, upload_finished=False) == "Preparing the upload..."
    half = Progress(objects_done=3, objects_total=6, bytes_done=1024 * 1024, bytes_total=2 << 20)
    assert progress_words(half, upload_finished=False) == (
        "Uploading: 3 of 6 images (1.0 of 2.0 MB)."
    )
    assert (percent(half, False), percent(half, True), percent(None, False)) == (50, 100, 0)
    # A study still arriving: no total yet, what was sent so far.
    assert progress_words(half, upload_finished=False, arriving=True) == (
        "Images still arriving: 3 images sent so far (1.0 MB). The upload goes on until the "
        "study is complete."
    )
    assert progress_words(None, upload_finished=False, arriving=True).startswith(
        "Images still arriving: 0 images sent so far"
    )
    assert progress_words(half, upload_finished=True, arriving=True) == "Upload complete."
    # Its push stopped (the problem and "Upload again" are shown beside): neither "Preparing"
    # nor "Uploading", nor still following the study.
    assert progress_words(half, upload_finished=False, stopped=True) == (
        "The upload stopped at 3 of 6 images (1.0 of 2.0 MB)."
    )
    assert progress_words(None, upload_finished=False, arriving=True, stopped=True) == (
        "The upload stopped before the first image was sent."
    )
    assert progress_words(half, upload_finished=True, stopped=True) == "Upload complete."


def _study(last_arrival: float, thickness: float | None) -> StudyRecord:
    from sending_site.inbox.arrival import Patient

    series = (SeriesRecord("1.2.3.1", 1, "CT", "AXIAL", 10, thickness),)
    return StudyRecord(
        "1.2.3", Patient(*JANE), "", "20250101", "0315", "", 0.0, last_arrival, series
    )


def test_readiness_in_the_list_of_recent_studies() -> None:
    def said(last: float, thickness: float | None) -> str:
        return readiness(assess(_study(last, thickness), None, now=100.0, stable_after=30.0))

    assert said(90.0, 1.0) == "Images still arriving"
    assert said(10.0, 5.0) == "No thin-slice series"
    assert said(10.0, 1.0) == "Arrived; open to check and send"
    words = study_words(_study(10.0, 1.0))
    assert (words.patient, words.birth_date, words.accession_number) == (
        "DOE, JANE",
        "1985-02-14",
        "not given",
    )


def test_push_jobs_are_kept_on_disk_and_read_back(tmp_path: Path) -> None:
    credential = AgentCredential(None, "TRAUMA_RELAY_SENDER")
    setup = PushSetup("http://127.0.0.1:9", credential, tmp_path, InboxSettings(tmp_path / "spool"))
    jobs = PushJobs(jobs_folder(tmp_path), setup)
    first = new_job("1.2.3", "county-trauma", "nurse.joy", 1.0)
    second = new_job("1.2.4", "county-trauma", "nurse.joy", 2.0)
    jobs.save(second)
    jobs.save(first)
    (jobs.folder / "damaged.json").write_text("{not json")
    assert jobs.stored() == [first, second]  # oldest first; the damaged file is left alone
    assert first.job_id != second.job_id


def test_push_journals_are_not_confused_with_the_console_files(tmp_path: Path) -> None:
    folder = tmp_path / "sending"
    folder.mkdir()
    (folder / "console-users.json").write_text("{}")
    assert journal.transfer_ids(tmp_path) == []
    assert journal.every(tmp_path) == []


def test_the_agent_hands_each_push_the_secret_stretched_ahead_and_starts_the_next() -> None:
    spare = SpareSecret()
    prepared = spare.prepare()
    assert spare.prepare() is prepared  # one under way at a time
    first = spare.take()
    assert first is prepared
    second = spare.take()  # never the same one twice
    third = SpareSecret().take()  # a spare not prepared stretches one when asked
    taken = [f.result(timeout=60) for f in (first, second, third)]
    assert len({t.secret for t in taken}) == 3
    assert len({t.salt for t in taken}) == 3
    for t in taken:  # the stretching is the code's, whatever locator the relay gives
        assert t.unlock == stretch_code(t.code(917), t.salt)


@pytest.mark.asyncio
async def test_a_push_job_refused_keeps_the_console_words_and_logs_no_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A job whose push stops at a live transfer of the study keeps the console's sentence and
    offers to replace it; the agent's log names the refusal, never the live code it states."""
    code = "7KQ2-M4XD-91RT-CV3B"
    said = Said(f"Its code {code} still works; run the same command with --replace.", f"{code} !")

    async def refusing(request: PushRequest, on_event: object) -> None:
        assert not request.replace
        raise AlreadySent.said(said)

    monkeypatch.setattr(jobs_module, "push", refusing)
    credential = tmp_path / "credential"
    credential.write_text("site-credential")
    credential.chmod(0o600)
    setup = PushSetup(
        "http://127.0.0.1:9",
        AgentCredential(credential, "TRAUMA_RELAY_SENDER"),
        tmp_path,
        InboxSettings(tmp_path / "spool"),
    )
    jobs = PushJobs(jobs_folder(tmp_path), setup)
    with caplog.at_level(logging.INFO):
        job = start_push(jobs, new_job("1.2.3", "county-trauma", "nurse.joy", 1.0))
        assert job.task is not None
        await job.task
    assert (job.record.ended, job.record.problem, job.record.replaceable) == (
        True,
        f"{code} !",
        True,
    )
    assert jobs.stored() == [job.record]
    assert "AlreadySent" in caplog.text
    assert code not in caplog.text


@pytest.mark.asyncio
async def test_a_trauma_center_gone_from_the_relay_is_said_in_the_consoles_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay no longer offers the trauma center the nurse picked (its operator disabled
    it after the page was opened): the job says so and what to do, not the relay's "check the
    directory of destinations", which names the command line's list; trying again is offered,
    as the operator may enable it again."""
    detail = (
        "There is no trauma center by that name on this relay. Check the directory of destinations."
    )

    async def refusing(request: PushRequest, on_event: object) -> None:
        raise RelayRefused(404, Problem.UNKNOWN_SITE, detail, {})

    monkeypatch.setattr(jobs_module, "push", refusing)
    credential = tmp_path / "credential"
    credential.write_text("site-credential")
    credential.chmod(0o600)
    setup = PushSetup(
        "http://127.0.0.1:9",
        AgentCredential(credential, "TRAUMA_RELAY_SENDER"),
        tmp_path,
        InboxSettings(tmp_path / "spool"),
    )
    jobs = PushJobs(jobs_folder(tmp_path), setup)
    job = start_push(jobs, new_job("1.2.3", "county-trauma", "nurse.joy", 1.0))
    assert job.task is not None
    await job.task
    assert (job.record.ended, job.record.definitive) == (True, False)
    assert "directory" not in job.record.problem
    assert "not on the relay just now" in job.record.problem
    assert "Try again" in job.record.problem


@pytest.mark.asyncio
async def test_a_push_job_that_stopped_is_no_longer_said_to_be_trying_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay stayed out of reach: the last "trying again in 15 seconds" goes with the push
    that said it, so the page does not promise a try that never comes beside "Upload again"."""

    async def out_of_reach(request: PushRequest, on_event: Callable[[object], None]) -> None:
        on_event(Retrying(15.0, "connection refused"))
        raise RelayUnreachable("The relay could not be reached.", "connection refused")

    monkeypatch.setattr(jobs_module, "push", out_of_reach)
    credential = tmp_path / "credential"
    credential.write_text("site-credential")
    credential.chmod(0o600)
    setup = PushSetup(
        "http://127.0.0.1:9",
        AgentCredential(credential, "TRAUMA_RELAY_SENDER"),
        tmp_path,
        InboxSettings(tmp_path / "spool"),
    )
    jobs = PushJobs(jobs_folder(tmp_path), setup)
    job = start_push(jobs, new_job("1.2.3", "county-trauma", "nurse.joy", 1.0))
    assert job.task is not None
    await job.task
    assert (job.record.ended, job.record.definitive) == (True, False)
    assert job.record.problem == "The relay could not be reached."
    assert job.retrying == ""


def test_a_new_code_asked_after_the_transfer_moved_on_says_what_it_became() -> None:
    assert moved_on("delivered", False) == (
        "No new code was given, and nothing was changed: since this page was opened, this "
        "transfer was delivered to the trauma center. Where it stands now is below."
    )
    assert "this transfer was discarded at the trauma center after review." in moved_on(
        "redeemed", True
    )
    assert "this transfer was opened by the trauma center with its code." in moved_on(
        "redeemed", False
    )
    assert "this transfer is created now." in moved_on("created", False)
