"""Ask the hospital PACS (C-FIND) and have it send a study to the agent (C-MOVE).

Blocking: call these from a thread (`asyncio.to_thread`), never on the loop. A C-MOVE in
particular only returns once the PACS has sent every image to the agent's own Storage SCP,
whose handlers need the loop to index them.

Each request gets an association of its own, made steady and paused before its one message
(`site_agent.association`: without that, pynetdicom's reactor thread can take a reply and
abort the association). The PACS must know this agent's AE title (host and port) as a move
destination, and allow it to query and retrieve.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from sending_site.inbox import errors
from sending_site.inbox.queries import (
    PacsSeries,
    StudyMatch,
    StudyQuery,
    move_identifier,
    pacs_series,
    series_identifier,
    study_match,
)
from sending_site.inbox.settings import InboxSettings, PacsNode
from site_agent.association import in_use, pause_reactor

PENDING = {0xFF00, 0xFF01}
SUCCESS = 0x0000
SOME_FAILED = 0xB000  # C-MOVE warning: sub-operations failed or had warnings
MOVE_DESTINATION_UNKNOWN = 0xA801


@dataclass(frozen=True)
class Retrieval:
    """What a C-MOVE did: images the PACS sent (`completed`), and those it could not."""

    completed: int
    failed: int
    warnings: int


def _pacs(settings: InboxSettings) -> PacsNode:
    if settings.pacs is None:
        raise errors.InboxSettingInvalid(
            "No hospital PACS is set (pacs.ae_title, pacs.host, pacs.port), so the agent "
            "cannot search it or fetch from it."
        )
    return settings.pacs


@contextmanager
def _association(settings: InboxSettings, model: str) -> Iterator[Any]:
    pacs = _pacs(settings)
    ae = AE(ae_title=settings.ae_title)
    for timeout in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, timeout, settings.pacs_timeout)
    ae.add_requested_context(model)
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        if assoc.rejected_contexts and not assoc.is_rejected:
            raise errors.PacsRefused(
                f"The PACS {pacs} does not accept queries or retrieves from this agent. Ask "
                f"the PACS administrator to allow AE title {settings.ae_title} to query "
                "(C-FIND) and retrieve (C-MOVE)."
            )
        why = "refused the connection" if assoc.is_rejected else "could not be reached"
        raise errors.PacsUnreachable(
            f"The PACS {pacs} {why}. Check its AE title, address and port in the agent's "
            f"settings, and that it knows this agent as AE title {settings.ae_title}."
        )
    with in_use(assoc):
        pause_reactor(assoc)
        yield assoc


def _answers(settings: InboxSettings, replies: Iterator[tuple[Any, Any]]) -> Iterator[Dataset]:
    """The identifiers of a C-FIND's pending replies; raises unless it ends in success."""
    pacs = _pacs(settings)
    for status, identifier in replies:
        if "Status" not in status:  # no answer: aborted, or the wait ran out
            raise errors.PacsUnreachable(
                f"The PACS {pacs} stopped answering during a search. Try again; if it keeps "
                "happening, ask the PACS administrator."
            )
        code = int(status.Status)
        if code in PENDING:
            if identifier is not None:
                yield identifier
        elif code != SUCCESS:
            raise errors.PacsRefused(
                f"The PACS {pacs} refused the search (status 0x{code:04X}). Ask the PACS "
                f"administrator to allow AE title {settings.ae_title} to query (C-FIND)."
            )


def find_studies(settings: InboxSettings, query: StudyQuery) -> list[StudyMatch]:
    """The PACS's studies matching `query`, newest first. Raises `PacsUnreachable`,
    `PacsRefused` or `InboxSettingInvalid` (no PACS set)."""
    model = StudyRootQueryRetrieveInformationModelFind
    with _association(settings, model) as assoc:
        found = [
            study_match(ds)
            for ds in _answers(settings, assoc.send_c_find(query.identifier(), model))
        ]
    return sorted(found, key=lambda m: (m.study_date, m.study_time), reverse=True)


def find_series(settings: InboxSettings, study_instance_uid: str) -> list[PacsSeries]:
    """Every series the PACS holds of the study, with its image count (Number of Series
    Related Instances). Raises like `find_studies`."""
    model = StudyRootQueryRetrieveInformationModelFind
    with _association(settings, model) as assoc:
        replies = assoc.send_c_find(series_identifier(study_instance_uid), model)
        return [pacs_series(ds) for ds in _answers(settings, replies)]


def _suboperations(status: Dataset, keyword: str) -> int:
    value = status.get(keyword)
    return int(value) if value is not None else 0


def _not_allowed_to_retrieve(settings: InboxSettings, what: str) -> errors.PacsRefused:
    return errors.PacsRefused(
        f"The PACS {_pacs(settings)} {what}. Ask the PACS administrator to add AE title "
        f"{settings.ae_title} with this computer's address and DICOM port {settings.port}, "
        "allowed to retrieve (C-MOVE)."
    )


def retrieve_study(settings: InboxSettings, study_instance_uid: str) -> Retrieval:
    """Have the PACS send the study to this agent's own AE title (C-MOVE); returns once the
    PACS is done. Images already received are received again and replace their copies.
    Raises `PacsRefused` when the PACS does not let the agent retrieve (an answer saying it
    does not know the destination, or none at all: Orthanc, for one, drops the association),
    or refuses; `PacsUnreachable` when it stops answering part way."""
    pacs = _pacs(settings)
    model = StudyRootQueryRetrieveInformationModelMove
    with _association(settings, model) as assoc:
        replies = assoc.send_c_move(move_identifier(study_instance_uid), settings.ae_title, model)
        final: Dataset | None = None
        pending = 0
        for status, _identifier in replies:
            if "Status" not in status:
                if not pending:
                    raise _not_allowed_to_retrieve(settings, "ended the request at once")
                raise errors.PacsUnreachable(
                    f"The PACS {pacs} stopped answering while sending the study. Fetch it "
                    "again: the images already received are kept."
                )
            if int(status.Status) in PENDING:
                pending += 1
            else:
                final = status
    if final is None:
        raise errors.PacsUnreachable(f"The PACS {pacs} did not say whether it sent the study.")
    code = int(final.Status)
    if code == MOVE_DESTINATION_UNKNOWN:
        raise _not_allowed_to_retrieve(settings, "does not know this agent as a destination")
    if code not in (SUCCESS, SOME_FAILED):
        raise _not_allowed_to_retrieve(settings, f"refused to send the study (0x{code:04X})")
    return Retrieval(
        completed=_suboperations(final, "NumberOfCompletedSuboperations"),
        failed=_suboperations(final, "NumberOfFailedSuboperations"),
        warnings=_suboperations(final, "NumberOfWarningSuboperations"),
    )
