"""The worklist search both console pages use (the holds queue's decision, the import's identity
step): the search form's fields (POSTed, so a patient's name stays out of URLs and access logs),
the default search for the ER's patient, the C-FIND on a worker thread, ranked against the ER's
patient, and each candidate as the pages show it. The form and the candidates' table are the
macros in `templates/worklist.html`.

Every search a page asks (`audited`) is in the audit log (`worklist-query`): the worklist's
answer names patients. The record says what the search was by and how many patients it found,
never what was typed nor who was found."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from receiving_site import errors, holds, worklist
from receiving_site.preview import sex_word
from receiving_site.worklist import Candidate, WorklistQuery
from site_agent.console import user_of
from site_agent.console.appkeys import AUDIT, address_of
from site_agent.dicom_text import date, person_name
from site_agent.settings.sections import DicomPeerSettings

AUDITED = "worklist-query"
# The audit record's `why` for each reason the worklist could not be asked (not its sentence).
WHY: tuple[tuple[type[errors.WorklistError], str], ...] = (
    (errors.WorklistNotConfigured, "no-worklist"),
    (errors.WorklistUnreachable, "unreachable"),
    (errors.WorklistRefused, "refused"),
    (errors.WorklistTooVague, "too-many-matches"),
)


@dataclass(frozen=True)
class Worklist:
    """Where to ask: the SCP (`ReceiverSettings.worklist`) and this system's AE title."""

    peer: DicomPeerSettings
    calling_ae_title: str

    @property
    def configured(self) -> bool:
        return bool(self.peer.host)


@dataclass(frozen=True)
class Search:
    """One search and its outcome: the candidates best first (None: not asked), or the worklist
    error's sentence."""

    query: WorklistQuery
    candidates: list[Candidate] | None = None
    problem: str = ""
    why: str = ""  # for the audit log: the kind of `problem` (`WHY`)


def default_query(name: str, birth_date: str) -> WorklistQuery:
    """The ER's patient: the family name with any given names, and the birth date."""
    return WorklistQuery(name.split("^")[0].strip() + "*", birth_date.strip())


def query_of(form: MultiDictProxy[Any]) -> WorklistQuery:
    """The search form as typed (a birth date as YYYY-MM-DD or YYYYMMDD)."""
    return WorklistQuery(
        patient_name=str(form.get("patient_name", "")).strip().upper(),
        birth_date=str(form.get("birth_date", "")).replace("-", "").strip(),
        patient_id=str(form.get("patient_id", "")).strip(),
    )


async def search(place: Worklist, query: WorklistQuery, ours: holds.Person) -> Search:
    """Ask the worklist off the event loop; candidates ranked against `ours`, or the sentence
    saying why the worklist could not be asked."""
    try:
        found = await asyncio.to_thread(worklist.find, place.peer, place.calling_ae_title, query)
    except errors.WorklistError as e:
        why = next((said for kind, said in WHY if isinstance(e, kind)), "not-asked")
        return Search(query, problem=e.message, why=why)
    return Search(query, worklist.rank(found, ours.name, ours.birth_date, ours.sex))


def searched_by(query: WorklistQuery) -> str:
    """What `query` searches by, in words, for the audit log (never the values)."""
    fields = (
        ("name", query.patient_name),
        ("birth date", query.birth_date),
        ("record number", query.patient_id),
    )
    return " and ".join(label for label, value in fields if value.strip()) or "nothing"


async def audited(
    request: web.Request,
    transfer_id: str,
    place: Worklist,
    query: WorklistQuery,
    ours: holds.Person,
    *,
    typed: bool,
) -> Search:
    """`search`, recorded in the audit log for the signed-in user on the page of `transfer_id`
    (`page`: imports or holds): by what (`searched_by`), whether staff `typed` it or it is the
    ER's patient asked when the identity step is first shown, and how many patients it found
    (`found`), or why the worklist could not be asked (a failure)."""
    found = await search(place, query, ours)
    answer: dict[str, object] = (
        {"why": found.why} if found.candidates is None else {"found": len(found.candidates)}
    )
    await request.app[AUDIT].arecord(
        AUDITED,
        who=user_of(request),
        where=address_of(request),
        outcome="failure" if found.candidates is None else "success",
        transfer=transfer_id,
        page=request.path.split("/", 2)[1],
        by=searched_by(query),
        typed=typed,
        **answer,
    )
    return found


def candidate_view(c: Candidate, ours: holds.Person) -> dict[str, Any]:
    """A candidate for the table: readable values, and whether it is the ER's patient (the same
    name and birth date)."""
    return {
        "c": c,
        "name": person_name(c.patient_name),
        "birth_date": date(c.birth_date),
        "sex": sex_word(c.sex),
        "scheduled": date(c.scheduled_date),
        "same": holds.same_name(c.patient_name, ours.name) and c.birth_date == ours.birth_date,
    }


def form_values(found: Search, ours: holds.Person) -> dict[str, Any]:
    """What the `worklist.html` macros show for `found`."""
    q = found.query
    return {
        "search": q,
        "shown_birth_date": date(q.birth_date) if q.birth_date else "",
        "candidates": None
        if found.candidates is None
        else [candidate_view(c, ours) for c in found.candidates],
        "worklist_problem": found.problem,
    }
