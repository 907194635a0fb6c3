"""Find a study in the hospital PACS (C-FIND by medical record number, accession number, or
name and birth date) and fetch it into the agent (C-MOVE to the agent's own AE title).

Searches are POST forms, so what was searched for (a name, a record number) never lands in an
address or the access log."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sending_site.console.appkeys import SETTINGS
from sending_site.console.studies import reading
from sending_site.inbox import errors as inbox_errors
from sending_site.inbox.pacs import find_studies, retrieve_study
from sending_site.inbox.queries import StudyQuery
from sending_site.settings import inbox_settings
from site_agent.console import render, user_of
from site_agent.console.appkeys import AUDIT, address_of
from site_agent.dicom_text import date, person_name

routes = web.RouteTableDef()


def query_of(mrn: str, accession: str, name: str, birth_date: str) -> tuple[StudyQuery, str]:
    """The search the form asks for, and what it searched by (for the audit log); raises
    `QueryInvalid` when it is none of the three ways."""
    if mrn.strip():
        return StudyQuery.by_patient_id(mrn), "medical record number"
    if accession.strip():
        return StudyQuery.by_accession(accession), "accession number"
    if name.strip() and birth_date.strip():
        return StudyQuery.by_name_and_birth_date(name, birth_date), "name and birth date"
    raise inbox_errors.QueryInvalid()


def _page(request: web.Request, status: int = 200, **context: object) -> web.Response:
    settings = request.app[SETTINGS]
    for name, default in (
        ("form", dict.fromkeys(("mrn", "accession", "name", "birth_date"), "")),
        ("problem", ""),
        ("matches", []),
        ("searched", False),
        ("fetched", None),
        ("fetched_study", ""),
    ):
        context.setdefault(name, default)
    return render(
        request,
        "pacs.html",
        status=status,
        pacs_set=bool(settings.pacs.host.strip()),
        pacs=settings.pacs,
        dicom=settings.dicom,
        person_name=person_name,
        date=date,
        **context,
    )


@routes.get("/pacs")
async def pacs_page(request: web.Request) -> web.Response:
    return _page(request)


@routes.post("/pacs")
async def pacs_search(request: web.Request) -> web.Response:
    posted = await request.post()
    form = {k: str(posted.get(k, ""))[:64] for k in ("mrn", "accession", "name", "birth_date")}
    try:
        query, by = query_of(form["mrn"], form["accession"], form["name"], form["birth_date"])
        settings = inbox_settings(request.app[SETTINGS])
        matches = await asyncio.to_thread(find_studies, settings, query)
    except inbox_errors.InboxError as e:
        return _page(request, status=400, form=form, problem=e.message)
    await request.app[AUDIT].arecord(
        "pacs-query", who=user_of(request), where=address_of(request), by=by, found=len(matches)
    )
    return _page(request, form=form, matches=matches, searched=True)


@routes.post("/pacs/fetch")
async def pacs_fetch(request: web.Request) -> web.Response:
    posted = await request.post()
    uid = str(posted.get("study", ""))[:64]
    settings = inbox_settings(request.app[SETTINGS])
    try:
        retrieval = await asyncio.to_thread(retrieve_study, settings, uid)
    except inbox_errors.InboxError as e:
        return _page(request, status=502, problem=e.message)
    await request.app[AUDIT].arecord(
        "pacs-retrieve",
        who=user_of(request),
        where=address_of(request),
        study=uid,
        received=retrieval.completed,
        failed=retrieval.failed,
    )
    async with reading(request.app[SETTINGS].spool.folder) as index:
        study = await index.study(uid) if index else None
    return _page(request, fetched=retrieval, fetched_study=study.study_id if study else "")
