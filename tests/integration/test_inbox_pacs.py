"""Orthanc as the hospital PACS, the running inbox as the agent's own AE: C-FIND (study root)
by medical record number, accession number, or name and birth date; the completeness report
comparing the series counts against the PACS's (a SERIES-level C-FIND); C-MOVE bringing a
study nobody sent into the inbox; and the plain errors when the PACS does not know the agent
or cannot be reached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inbox_harness import InboxProcess, make_multi_series_study, running_inbox
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from peers.ports import free_port

from sending_site.inbox import errors
from sending_site.inbox.completeness import SeriesState
from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.pacs import find_studies, retrieve_study
from sending_site.inbox.queries import StudyQuery
from sending_site.inbox.readiness import completeness_of
from sending_site.inbox.settings import InboxSettings, PacsNode
from sending_site.source import Arrivals

pytestmark = pytest.mark.peers

AE_TITLE = "TRAUMARELAY"
PATIENT = {
    "patient_name": "TRAUMA^ALEX",
    "patient_id": "MRN-4242",
    "patient_birth_date": "19900607",
    "accession_number": "ACC-77",
}


def _pacs_knowing(agent: InboxProcess) -> dict[str, Any]:
    """What the PACS administrator adds for the agent: its AE title, address and port,
    allowed to query and retrieve."""
    return {
        AE_TITLE: {
            "AET": AE_TITLE,
            "Host": agent.host,
            "Port": agent.port,
            "AllowFind": True,
            "AllowMove": True,
            "AllowEcho": True,
            "AllowStore": True,
        }
    }


def _settings(agent: InboxProcess, orthanc: OrthancServer) -> InboxSettings:
    pacs = PacsNode(orthanc.ae_title, orthanc.host, orthanc.dicom_port)
    return InboxSettings(
        spool=agent.spool, ae_title=AE_TITLE, port=agent.port, pacs=pacs, stable_after=0
    )


async def _report(settings: InboxSettings, study_uid: str) -> Any:
    index = await InboxIndex.open(settings.spool / "index.sqlite3", read_only=True)
    try:
        return await completeness_of(settings, index, study_uid, time.time())
    finally:
        await index.close()


def test_find_check_and_fetch_a_study_from_the_pacs(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=5150, **PATIENT)
    other = make_multi_series_study(tmp_path / "other", seed=5151)  # another patient
    with running_inbox(tmp_path / "agent", ae_title=AE_TITLE) as agent:
        orthanc = orthanc_factory(dicom_modalities=_pacs_knowing(agent))
        for folder in (tmp_path / "study", tmp_path / "other"):
            assert storescu(orthanc.dicom_port, [folder]).returncode == 0
        settings = _settings(agent, orthanc)

        by_mrn = find_studies(settings, StudyQuery.by_patient_id("MRN-4242"))
        by_accession = find_studies(settings, StudyQuery.by_accession("ACC-77"))
        by_name = find_studies(
            settings, StudyQuery.by_name_and_birth_date("Trauma, Alex", "1990-06-07")
        )
        assert by_mrn == by_accession == by_name
        (match,) = by_mrn
        assert (match.patient_id, match.patient_name) == ("MRN-4242", "TRAUMA^ALEX")
        assert (match.series, match.instances) == (3, 20)
        assert find_studies(settings, StudyQuery.by_patient_id("MRN-0000")) == []
        assert len(find_studies(settings, StudyQuery.by_patient_id("ER-12345"))) == 1
        assert len(other) == 3

        # The CT technologist sent the thin series only: the report says what is missing.
        thin_uid, thin = next((uid, f) for uid, f in study.items() if len(f) == 12)
        assert storescu(agent.port, thin, called_ae_title=AE_TITLE).returncode == 0
        partial = asyncio.run(_report(settings, match.study_instance_uid))
        states = {s.series_instance_uid: s.state for s in partial.series}
        assert states == {
            uid: SeriesState.COMPLETE if uid == thin_uid else SeriesState.MISSING for uid in study
        }
        assert not partial.counts_match
        assert "Series 2 (AXIAL 5MM): none of its 5 images have arrived." in partial.findings()

        # Fetch the rest from the PACS (C-MOVE to the agent's own AE title).
        retrieval = retrieve_study(settings, match.study_instance_uid)
        assert (retrieval.completed, retrieval.failed) == (20, 0)
        assert agent.series_counts(match.study_instance_uid) == {
            uid: len(files) for uid, files in study.items()
        }
        whole = asyncio.run(_report(settings, match.study_instance_uid))
        assert {s.state for s in whole.series} == {SeriesState.COMPLETE}
        assert [(s.received, s.in_pacs) for s in whole.series] == [(12, 12), (5, 5), (3, 3)]
        assert whole.complete
        assert whole.findings() == []
    assert "image(s) kept, 0 refused" in agent.log()


def test_a_pacs_that_does_not_know_the_agent_says_what_to_ask_for(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    make_multi_series_study(tmp_path / "study", seed=5152, **PATIENT)
    with running_inbox(tmp_path / "agent", ae_title=AE_TITLE) as agent:
        orthanc = orthanc_factory()  # no DicomModalities: the agent is a stranger
        assert storescu(orthanc.dicom_port, [tmp_path / "study"]).returncode == 0
        settings = _settings(agent, orthanc)
        (match,) = find_studies(settings, StudyQuery.by_accession("ACC-77"))
        with pytest.raises(errors.PacsRefused, match="add AE title TRAUMARELAY"):
            retrieve_study(settings, match.study_instance_uid)
        assert agent.kept_files() == []


# pynetdicom 3.0 leaves the socket of a refused connection unclosed (its shutdown() raises on
# an unconnected socket before close()); the garbage collector reports it, not our code.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_pacs_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    nobody = PacsNode("PACS", "127.0.0.1", free_port())
    settings = InboxSettings(spool=tmp_path, pacs=nobody, pacs_timeout=5)
    with pytest.raises(errors.PacsUnreachable, match=r"PACS at 127\.0\.0\.1:\d+ could not be"):
        find_studies(settings, StudyQuery.by_patient_id("MRN-4242"))
    with pytest.raises(errors.InboxSettingInvalid, match="No hospital PACS is set"):
        find_studies(InboxSettings(spool=tmp_path), StudyQuery.by_patient_id("MRN-4242"))


def test_a_followed_study_settles_once_the_pacs_holds_no_more_than_arrived(
    tmp_path: Path, orthanc_factory: Callable[..., OrthancServer]
) -> None:
    """A push following a study is told it has settled when it is handed the last images of a
    study the PACS holds no more of (the ER console then stops saying images are still
    arriving while they upload), not while the PACS holds more; and the answer after that
    calls it complete at once, not a minute later for having just asked the PACS."""
    study = make_multi_series_study(tmp_path / "study", seed=5153, **PATIENT)
    with running_inbox(tmp_path / "agent", ae_title=AE_TITLE) as agent:
        orthanc = orthanc_factory(dicom_modalities=_pacs_knowing(agent))
        assert storescu(orthanc.dicom_port, [tmp_path / "study"]).returncode == 0
        settings = _settings(agent, orthanc)
        (match,) = find_studies(settings, StudyQuery.by_accession("ACC-77"))
        thin = next(f for f in study.values() if len(f) == 12)
        assert storescu(agent.port, thin, called_ae_title=AE_TITLE).returncode == 0

        async def follow() -> list[Arrivals]:
            source = SpooledStudy(settings, match.study_instance_uid, poll=0.01)
            try:
                answers = [await source.arrivals()]  # the thin series; the PACS holds more
                retrieve_study(settings, match.study_instance_uid)
                answers.append(await source.arrivals())  # the rest: every image is here
                answers.append(await source.arrivals())
                return answers
            finally:
                await source.close()

        partial, rest, last = asyncio.run(follow())
        assert (len(partial.paths), partial.settled, partial.complete) == (12, False, False)
        assert (len(rest.paths), rest.settled, rest.complete) == (8, True, False)
        assert (last.paths, last.complete) == ((), True)
