"""The worklist search both console pages use (the holds queue's decision, the import's identity
step): the search form's fields (POSTed, so a patient's name stays out of URLs and access logs),
the default search for the ER's patient, the C-FIND on a worker thread, ranked against the ER's
patient, and each candidate as the pages show it. The form and the candidates' table are the
macros in `templates/worklist.html`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from multidict import MultiDictProxy

from receiving_site import errors, holds, worklist
from receiving_site.preview import sex_word
from receiving_site.worklist import Candidate, WorklistQuery
from site_agent.dicom_text import date, person_name
from site_agent.settings.sections import DicomPeerSettings


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
        return Search(query, problem=e.message)
    return Search(query, worklist.rank(found, ours.name, ours.birth_date, ours.sex))


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
