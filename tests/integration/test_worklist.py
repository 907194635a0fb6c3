"""The Modality Worklist client against DCMTK's real `wlmscpfs`, serving worklist files written
here: staff find the local patient by name (wildcards), birth date or local MRN, and a worklist
that cannot answer is a sentence that says what to do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers.ports import free_port
from peers.worklist import ScheduledPatient, WorklistServer

from receiving_site import errors, worklist
from receiving_site.worklist import Candidate, WorklistQuery
from site_agent.settings.sections import DicomPeerSettings

ALIAS = ScheduledPatient(
    "MRN-900001", "TRAUMA^ZULU", "", "F", "ACC-1", "CT TRAUMA PANSCAN", issuer_of_patient_id=""
)
JANE = ScheduledPatient("MRN-777", "DOE^JANE", "19850214", "F", "ACC-2", "CT HEAD W/O")
JOHN = ScheduledPatient("MRN-778", "DOE^JOHN", "19700301", "M", "ACC-3", "CT CHEST")
OTHER = ScheduledPatient("MRN-779", "ROE^RICHARD", "19850214", "M", "ACC-4", "CT SPINE")


@pytest.fixture(scope="module")
def scp() -> Iterator[WorklistServer]:
    with WorklistServer([ALIAS, JANE, JOHN, OTHER]) as server:
        yield server


def _peer(scp: WorklistServer) -> DicomPeerSettings:
    return DicomPeerSettings(ae_title=scp.ae_title, host=scp.host, port=scp.port)


def _ids(found: list[Candidate]) -> list[str]:
    return sorted(c.patient_id for c in found)


def test_a_name_with_a_wildcard_finds_the_scheduled_patients(scp: WorklistServer) -> None:
    found = worklist.find(_peer(scp), "TRAUMARELAY", WorklistQuery(patient_name="DOE^*"))

    assert _ids(found) == ["MRN-777", "MRN-778"]
    jane = next(c for c in found if c.patient_id == "MRN-777")
    assert jane == Candidate(
        patient_id="MRN-777",
        issuer_of_patient_id="REGIONAL",
        patient_name="DOE^JANE",
        birth_date="19850214",
        sex="F",
        accession_number="ACC-2",
        procedure="CT HEAD W/O",
        scheduled_date="20270115",
    )


def test_a_birth_date_or_a_local_mrn_narrows_the_search(scp: WorklistServer) -> None:
    by_birth = worklist.find(_peer(scp), "TRAUMARELAY", WorklistQuery(birth_date="19850214"))
    assert _ids(by_birth) == ["MRN-777", "MRN-779"]
    by_mrn = worklist.find(_peer(scp), "TRAUMARELAY", WorklistQuery(patient_id="MRN-900001"))
    assert [(c.patient_name, c.procedure) for c in by_mrn] == [("TRAUMA^ZULU", "CT TRAUMA PANSCAN")]
    nobody = worklist.find(_peer(scp), "TRAUMARELAY", WorklistQuery(patient_name="SMITH*"))
    assert nobody == []


def test_the_er_patient_ranks_first_and_the_alias_stays_listed(scp: WorklistServer) -> None:
    everyone = worklist.find(_peer(scp), "TRAUMARELAY", WorklistQuery())
    assert len(everyone) == 4

    ranked = worklist.rank(everyone, "DOE^JANE", "19850214", "F")

    # The same name and birth date; the same birth date; the same family name; the alias.
    assert [c.patient_id for c in ranked] == ["MRN-777", "MRN-779", "MRN-778", "MRN-900001"]


# pynetdicom 3.0 leaves the socket of a refused connection unclosed (its shutdown() raises on
# a socket that never connected); the collector's ResourceWarning is not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_worklist_that_is_not_running_says_so(scp: WorklistServer) -> None:
    closed = DicomPeerSettings(ae_title="WORKLIST", host="127.0.0.1", port=free_port())
    with pytest.raises(errors.WorklistUnreachable) as caught:
        worklist.find(closed, "TRAUMARELAY", WorklistQuery(patient_name="DOE*"))
    assert f"WORKLIST at 127.0.0.1:{closed.port} could not be reached" in caught.value.message
    assert "type the local medical record number" in caught.value.message


@pytest.mark.parametrize("attempt", range(5))  # wlmscpfs closes the connection as it rejects
def test_a_wrong_ae_title_is_refused(scp: WorklistServer, attempt: int) -> None:
    wrong = DicomPeerSettings(ae_title="NOSUCHAE", host=scp.host, port=scp.port)
    with pytest.raises(errors.WorklistRefused) as caught:
        worklist.find(wrong, "TRAUMARELAY", WorklistQuery(patient_name="DOE*"))
    assert f"NOSUCHAE at {scp.host}:{scp.port}" in caught.value.message
    assert "TRAUMARELAY" in caught.value.message


def test_no_worklist_configured() -> None:
    with pytest.raises(errors.WorklistNotConfigured):
        worklist.find(DicomPeerSettings(ae_title="WORKLIST"), "TRAUMARELAY", WorklistQuery())
