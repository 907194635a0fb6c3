"""The trauma center's Modality Worklist (C-FIND, PS3.4 K.6): staff pick the local patient from
the patients scheduled here (a trauma alias registered on arrival, usually) instead of typing
the local medical record number.

`find` asks the SCP configured in `ReceiverSettings.worklist` by patient name (DICOM wildcards
`*` and `?`), birth date and/or local patient ID, and returns typed `Candidate`s; `rank` orders
them against the ER's patient (pure). What the SCP cannot answer is a `WorklistError` whose
sentence says what to do.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore

from receiving_site import errors
from receiving_site.holds import same_name
from site_agent.association import in_use, pause_reactor
from site_agent.settings.sections import DicomPeerSettings

PENDING = {0xFF00, 0xFF01}
MOST_CANDIDATES = 200  # a wildcard that matches more is too vague to pick from
TIMEOUT = 30.0  # seconds for the association and for each answer


@dataclass(frozen=True)
class WorklistQuery:
    """What staff typed: any of a name (wildcards allowed), a birth date (YYYYMMDD) and a
    local patient ID. Empty fields match everything."""

    patient_name: str = ""
    birth_date: str = ""
    patient_id: str = ""

    def empty(self) -> bool:
        return not (self.patient_name.strip() or self.birth_date.strip() or self.patient_id.strip())


@dataclass(frozen=True)
class Candidate:
    """One scheduled patient from the worklist (DICOM values: PN, DA, CS)."""

    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession_number: str
    procedure: str  # Requested Procedure, else the Scheduled Procedure Step, description
    scheduled_date: str  # the Scheduled Procedure Step Start Date


def _query(query: WorklistQuery) -> Dataset:
    ds = Dataset()
    ds.PatientName = query.patient_name.strip()
    ds.PatientBirthDate = query.birth_date.strip()
    ds.PatientID = query.patient_id.strip()
    ds.IssuerOfPatientID = ""
    ds.PatientSex = ""
    ds.AccessionNumber = ""
    ds.RequestedProcedureDescription = ""
    step = Dataset()
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    step.ScheduledProcedureStepDescription = ""
    step.Modality = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def candidate(answer: Dataset) -> Candidate:
    """A worklist answer as a `Candidate` (missing attributes are empty)."""
    steps = answer.get("ScheduledProcedureStepSequence") or []
    step = steps[0] if steps else Dataset()
    return Candidate(
        patient_id=_text(answer, "PatientID"),
        issuer_of_patient_id=_text(answer, "IssuerOfPatientID"),
        patient_name=str(answer.get("PatientName", "") or ""),
        birth_date=_text(answer, "PatientBirthDate"),
        sex=_text(answer, "PatientSex"),
        accession_number=_text(answer, "AccessionNumber"),
        procedure=_text(answer, "RequestedProcedureDescription")
        or _text(step, "ScheduledProcedureStepDescription"),
        scheduled_date=_text(step, "ScheduledProcedureStepStartDate"),
    )


def _where(peer: DicomPeerSettings) -> str:
    return f"{peer.ae_title} at {peer.host}:{peer.port}"


def _listening(peer: DicomPeerSettings) -> bool:
    """Whether something accepts TCP connections at the worklist's address. pynetdicom reports
    a rejection that arrives together with the connection closing (DCMTK's wlmscpfs, for a
    wrong called AE title, now and then) as an abort, as it does a refused connection: this
    tells "nothing listens there" from "it hung up on us"."""
    try:
        with socket.create_connection((peer.host, peer.port), timeout=TIMEOUT):
            return True
    except OSError:
        return False


def find(peer: DicomPeerSettings, calling_ae_title: str, query: WorklistQuery) -> list[Candidate]:
    """The worklist's patients matching `query`, one per patient ID and issuer (a patient
    scheduled twice is listed once), as the SCP ordered them.

    Raises `WorklistNotConfigured` without a host, `WorklistUnreachable` when no association
    is made, `WorklistRefused` when the SCP refuses the query or answers with a failure, and
    `WorklistTooVague` past `MOST_CANDIDATES`."""
    if not peer.host:
        raise errors.WorklistNotConfigured()
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise errors.WorklistRefused(
                f"The worklist {_where(peer)} refused this system's AE title "
                f"{calling_ae_title}. Ask its administrators to allow it, or type the local "
                "medical record number."
            )
        if assoc.rejected_contexts:
            raise errors.WorklistRefused(
                f"The worklist {_where(peer)} does not answer worklist queries. Check "
                "worklist.ae_title and worklist.port, or type the local medical record number."
            )
        if _listening(peer):
            raise errors.WorklistRefused(
                f"The worklist {_where(peer)} closed the connection without answering. Check "
                f"worklist.ae_title, and that it accepts this system's AE title "
                f"{calling_ae_title}; or type the local medical record number."
            )
        raise errors.WorklistUnreachable(
            f"The worklist {_where(peer)} could not be reached. Check that it is running and "
            "the worklist settings, or type the local medical record number."
        )
    found: dict[tuple[str, str], Candidate] = {}
    with in_use(assoc):
        pause_reactor(assoc)
        for status, identifier in assoc.send_c_find(_query(query), ModalityWorklistInformationFind):
            if "Status" not in status:
                raise errors.WorklistUnreachable(
                    f"The worklist {_where(peer)} stopped answering. Try again, or type the "
                    "local medical record number."
                )
            code = int(status.Status)
            if code in PENDING and identifier is not None:
                match = candidate(identifier)
                found.setdefault((match.patient_id, match.issuer_of_patient_id), match)
                if len(found) > MOST_CANDIDATES:
                    assoc.abort()
                    raise errors.WorklistTooVague()
            elif code not in PENDING and code != 0x0000:
                raise errors.WorklistRefused(
                    f"The worklist {_where(peer)} refused the query (status "
                    f"0x{code & 0xFFFF:04X}). Try fewer or other search terms, or type the local "
                    "medical record number."
                )
    return list(found.values())


def _score(c: Candidate, name: str, birth_date: str, sex: str) -> int:
    score = 0
    if name and same_name(c.patient_name, name):
        score += 4
    elif name and c.patient_name.split("^")[0].casefold() == name.split("^")[0].casefold():
        score += 2  # the family name alone
    if birth_date and c.birth_date == birth_date:
        score += 3
    if sex and c.sex.upper() == sex.upper():
        score += 1
    return score


def rank(candidates: list[Candidate], name: str, birth_date: str, sex: str) -> list[Candidate]:
    """`candidates` best first against the ER's patient: the same name counts most, then the
    same birth date, the same family name, the same sex; ties keep the worklist's order. A
    trauma alias matches on none of these and simply comes after: ranking never drops one."""
    return sorted(
        candidates, key=lambda c: -_score(c, name.strip(), birth_date.strip(), sex.strip())
    )
