"""Before anything is stored, ask the PACS (C-FIND) whether the study would land on someone
else's record: its patient ID already belonging to another patient, or its Study Instance UIDs
already filed under another patient (DOMAIN.md, "Import reconciliation": hold for a human,
never merge or overwrite), and what it holds for a local record number (`find_patient`, for
`reconcile`). The coercion itself is `reconcile.coerce`.

A hold carries the PACS's record it conflicts with (`holds.Hold`), so that staff see both sides.
`probe` asks a question with no possible answer before the code is spent, so that a PACS that
refuses our queries is found while the code still works.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from receiving_site import errors
from receiving_site.holds import Hold, Kind, Person, same_name
from receiving_site.pacs import PacsAddress
from receiving_site.reconcile import Demographics
from site_agent.association import in_use, pause_reactor

PENDING = {0xFF00, 0xFF01}


@dataclass(frozen=True)
class Patient:
    """Who the transfer belongs to (from the verified study summary)."""

    patient_id: str
    patient_name: str
    birth_date: str


def _held(
    what: str,
    *,
    kind: Kind = Kind.UNCHECKED,
    pacs: Dataset | None = None,
    skippable: bool = True,
    held: type[errors.IdentityHeld] = errors.IdentityHeld,
) -> errors.IdentityHeld:
    person = None
    if pacs is not None:
        person = Person(
            str(pacs.get("PatientID", "")).strip(),
            str(pacs.get("PatientName", "")),
            str(pacs.get("PatientBirthDate", "")).strip(),
            str(pacs.get("PatientSex", "")).strip(),
        )
    return held(f"{what}.", Hold(kind, what, person, skippable))


def _cannot_check(pacs: PacsAddress, why: str) -> errors.IdentityHeld:
    return _held(
        f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} {why}, so the patient's identity "
        "could not be checked against its records",
        held=errors.IdentityNotChecked,
    )


def _query(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = ""
    ds.PatientID = ""
    ds.PatientName = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find(assoc: Any, pacs: PacsAddress, query: Dataset) -> list[Dataset]:
    """Every match of `query`; raises `IdentityHeld` unless the PACS answers it fully."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore

    matches: list[Dataset] = []
    pause_reactor(assoc)
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if "Status" not in status:  # no answer: aborted, or the DIMSE wait ran out
            raise _cannot_check(pacs, "refused or did not answer a query (C-FIND)")
        code = int(status.Status)
        if code in PENDING:
            if identifier is not None:
                matches.append(identifier)
        elif code != 0x0000:
            raise _cannot_check(pacs, f"refused a query (C-FIND status 0x{code & 0xFFFF:04X})")
    return matches


@contextmanager
def _querying(pacs: PacsAddress) -> Iterator[Any]:
    """An association for C-FIND; raises `IdentityHeld` if the PACS cannot be asked."""
    # Imported here: a redeem into a folder starts without the network half of DICOM.
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore

    ae = AE(ae_title=pacs.calling_ae_title)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        why = "refused the association" if assoc.is_rejected else "does not answer queries"
        if assoc.rejected_contexts and not assoc.is_rejected:
            why = "does not accept queries (C-FIND) from this system"
        raise _cannot_check(pacs, why)
    with in_use(assoc):
        yield assoc


def find_patient(pacs: PacsAddress, patient_id: str, issuer: str) -> Demographics | None:
    """What the PACS holds for local `patient_id`, from its studies; None if it has none.
    Records under another issuer count too: a PACS that files by patient ID alone would put
    the images with them. Raises `IdentityHeld` if the PACS cannot be asked, answers with
    another patient ID than the one asked for (a PACS matching loosely: the number is not
    what it files under), or holds that ID under several names or birth dates."""
    try:
        with _querying(pacs) as assoc:
            query = _query("STUDY", PatientID=patient_id)
            matches = _find(assoc, pacs, query)
    except errors.IdentityHeld as e:
        raise _held(
            f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} could not be asked what it "
            f"holds for patient {patient_id}",
            skippable=False,
            held=errors.IdentityNotChecked,
        ) from e
    if any(str(m.get("PatientID", "")).strip() != patient_id for m in matches):
        raise _held(
            f"The PACS answered a query for patient ID {patient_id} with other records",
            skippable=False,
        )
    records = {
        (str(m.get("PatientName", "")).rstrip("^ "), str(m.get("PatientBirthDate", "")).strip())
        for m in matches
    }
    if not records:
        return None
    if len({(name.casefold(), birth) for name, birth in records}) > 1:
        raise _held(
            f"The PACS has patient ID {patient_id} under more than one name or birth date",
            skippable=False,
        )
    name, birth = min(records)
    sex = max(str(m.get("PatientSex", "")).strip() for m in matches)  # for display: a given one
    return Demographics(patient_id, issuer, name, birth, sex)


def check_pacs_identity(pacs: PacsAddress, patient: Patient, study_uids: list[str]) -> None:
    """Raise `IdentityHeld` if the PACS holds any of `study_uids` under another patient, holds
    `patient.patient_id` for a patient of another name or birth date, or cannot be asked."""
    with _querying(pacs) as assoc:
        for uid in sorted(set(study_uids)):
            for match in _find(assoc, pacs, _query("STUDY", StudyInstanceUID=uid)):
                other_id = str(match.get("PatientID", "")).strip()
                other_name = str(match.get("PatientName", ""))
                if other_id != patient.patient_id.strip() or not same_name(
                    other_name, patient.patient_name
                ):
                    raise _held(
                        "The PACS already has this study (same Study Instance UID) under a "
                        "different patient",
                        kind=Kind.STUDY,
                        pacs=match,
                    )
        if not patient.patient_id:
            return  # an empty patient ID matches every record: nothing to compare against
        for match in _find(assoc, pacs, _query("STUDY", PatientID=patient.patient_id)):
            if str(match.get("PatientID", "")).strip() != patient.patient_id.strip():
                raise _held(  # a PACS that matches loosely files under something else
                    f"The PACS answered a query for patient ID {patient.patient_id} with other "
                    "records"
                )
            if not same_name(str(match.get("PatientName", "")), patient.patient_name):
                raise _held(
                    f"The PACS already has patient ID {patient.patient_id} under a different name",
                    kind=Kind.PATIENT_ID,
                    pacs=match,
                )
            other_birth = str(match.get("PatientBirthDate", "")).strip()
            if other_birth and patient.birth_date.strip() and other_birth != patient.birth_date:
                raise _held(
                    f"The PACS already has patient ID {patient.patient_id} with a different "
                    "birth date",
                    kind=Kind.PATIENT_ID,
                    pacs=match,
                )


def probe(pacs: PacsAddress) -> None:
    """Ask the PACS for a patient ID that cannot exist, over an association of its own, so that
    a PACS refusing our queries is found before the code is spent. Raises `QueriesRefused`,
    naming the AE title the PACS administrators must allow."""
    query = _query("STUDY", PatientID=f"TRAUMA-RELAY-PROBE-{secrets.token_hex(8)}")
    try:
        with _querying(pacs) as assoc:
            _find(assoc, pacs, query)
    except errors.IdentityHeld as e:
        raise errors.QueriesRefused(
            f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} does not answer queries "
            f"(C-FIND) from this system's AE title {pacs.calling_ae_title}. Before storing, "
            "redeem asks the PACS whether this patient or study is already filed under someone "
            "else, so the PACS administrators must allow C-FIND from AE title "
            f"{pacs.calling_ae_title} (in Orthanc: DicomModalities, or DicomAlwaysAllowFind); "
            "or give --calling-aet an AE title the PACS already answers."
        ) from e
