"""Find a study in the hospital PACS (C-FIND by medical record number, accession number, or
name and birth date) and fetch it into the agent: over DICOMweb (WADO-RS) when the PACS's
DICOMweb address is set, in the background, with a page showing it arrive; else with a C-MOVE
to the agent's own AE title, answered once the PACS has sent everything.

Searches are POST forms, so what was searched for (a name, a record number) never lands in an
address or the access log."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from sending_site.console.appkeys import FETCHES, SETTINGS
from sending_site.console.fetches import Fetch
from sending_site.console.studies import reading
from sending_site.inbox import errors as inbox_errors
from sending_site.inbox.pacs import find_studies, retrieve_study
from sending_site.inbox.queries import StudyQuery
from sending_site.inbox.settings import InboxSettings
from sending_site.inbox.wado import fetch_study
from sending_site.settings import inbox_settings
from site_agent.console import render, user_of
from site_agent.console.appkeys import AUDIT, address_of
from site_agent.dicom_text import date, how_many_images, person_name

routes = web.RouteTableDef()
# The search form's fields; each Fetch form carries them back, so a fetch that fails keeps the
# search for another try.
FIELDS = ("mrn", "accession", "name", "birth_date")


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
        ("form", dict.fromkeys(FIELDS, "")),
        ("problem", ""),
        ("fault", ""),
        ("matches", []),
        ("searched", False),
        ("fetched", None),
        ("fetched_study", ""),
        ("name_hint", False),
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


def _searched(posted: Mapping[str, object]) -> dict[str, str]:
    """What the search form held, as posted with a search or a Fetch."""
    return {k: str(posted.get(k, ""))[:64] for k in FIELDS}


@routes.get("/pacs")
async def pacs_page(request: web.Request) -> web.Response:
    return _page(request)


@routes.post("/pacs")
async def pacs_search(request: web.Request) -> web.Response:
    form = _searched(await request.post())
    try:
        query, by = query_of(form["mrn"], form["accession"], form["name"], form["birth_date"])
        settings = inbox_settings(request.app[SETTINGS])
        matches = await asyncio.to_thread(find_studies, settings, query)
    except inbox_errors.QueryInvalid as e:
        # Nothing filled in: the first field is where to start, so the focus goes there.
        fault = "" if any(value.strip() for value in form.values()) else "mrn"
        return _page(request, status=400, form=form, problem=e.message, fault=fault)
    except inbox_errors.InboxError as e:
        return _page(request, status=400, form=form, problem=e.message)
    await request.app[AUDIT].arecord(
        "pacs-query", who=user_of(request), where=address_of(request), by=by, found=len(matches)
    )
    # "Doe Jane" is searched as one family name: said how to write it, if nothing matched.
    whole_name = by == "name and birth date" and not {",", "^"} & set(form["name"])
    return _page(request, form=form, matches=matches, searched=True, name_hint=whole_name)


@routes.post("/pacs/fetch")
async def pacs_fetch(request: web.Request) -> web.Response:
    posted = await request.post()
    uid = str(posted.get("study", ""))[:64]
    settings = inbox_settings(request.app[SETTINGS])
    if settings.pacs_web is not None:
        return _fetch_over_dicomweb(request, settings, uid)
    try:
        retrieval = await asyncio.to_thread(retrieve_study, settings, uid)
    except inbox_errors.InboxError as e:
        return _page(request, status=502, form=_searched(posted), problem=e.message)
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


def _fetch_over_dicomweb(request: web.Request, settings: InboxSettings, uid: str) -> web.Response:
    """Start the fetch in the background and show its page, which follows it."""
    fetches = request.app[FETCHES]
    keeper = fetches.keeper
    if keeper is None:
        return _page(
            request,
            status=409,
            problem=(
                "This console runs without the agent's DICOM inbox (trauma-relay sender "
                "console), so it cannot fetch. Use the console of trauma-relay sender."
            ),
        )
    audit, who, where = request.app[AUDIT], user_of(request), address_of(request)

    async def ended(fetch: Fetch) -> None:
        await audit.arecord(
            "pacs-retrieve",
            who=who,
            where=where,
            outcome="success" if fetch.retrieval else "failure",
            study=uid,
            over="dicomweb",
            received=fetch.progress.received,
            failed=fetch.progress.failed,
        )

    fetch = fetches.start(
        uid, who, lambda progress: fetch_study(settings, keeper, uid, progress), ended
    )
    raise web.HTTPSeeOther(f"/pacs/fetches/{fetch.fetch_id}")


def _fetch(request: web.Request) -> Fetch:
    fetch = request.app[FETCHES].get(request.match_info["fetch_id"])
    if fetch is None:
        raise web.HTTPNotFound(text="No such fetch: it ended before the agent last started.")
    return fetch


async def _fetch_state(request: web.Request, fetch: Fetch) -> tuple[str, str, str]:
    """(the version the live script compares, the study's id once listed, the progress line)."""
    async with reading(request.app[SETTINGS].spool.folder) as index:
        study = await index.study(fetch.study_instance_uid) if index else None
    study_id = str(study.study_id) if study else ""
    state = "running" if fetch.running else ("failed" if fetch.problem else "done")
    received = fetch.progress.received
    progress = f"{how_many_images(received)} received so far" + (
        f", {fetch.progress.failed} could not be kept." if fetch.progress.failed else "."
    )
    return f"{state}|{study_id}", study_id, progress


@routes.get("/pacs/fetches/{fetch_id}")
async def pacs_fetch_page(request: web.Request) -> web.Response:
    fetch = _fetch(request)
    version, study_id, progress = await _fetch_state(request, fetch)
    return render(
        request,
        "pacs_fetch.html",
        fetch=fetch,
        version=version,
        study_id=study_id,
        progress=progress,
    )


@routes.get("/pacs/fetches/{fetch_id}/status.json")
async def pacs_fetch_status(request: web.Request) -> web.Response:
    version, _, progress = await _fetch_state(request, _fetch(request))
    return web.json_response({"version": version, "progress": progress, "retrying": ""})
