"""The import's identity step with the Modality Worklist: the ER's patient is looked up on the
worklist (by name and birth date) the first time the step is shown, staff search again with the
POSTed form, and a candidate they pick is the local record to check, with its demographics
compared too. Without a worklist, or when it cannot be asked, the step says why and staff type
the number (without one, in staff's words, and the setting to the administrator in a quieter
line)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from receiving_site import holds, reconcile
from receiving_site.console import worklist_search
from receiving_site.console.appkeys import IMPORTS, SEARCHES, WORKLIST
from receiving_site.console.errors import NoWorklist, WorklistPickStale
from receiving_site.console.imports import Import, Stage
from receiving_site.console.worklist_search import Search
from site_agent.console.errors import PageNotFound
from transfer_codes.manifest import StudySummary

routes = web.RouteTableDef()

PICKED = "from_worklist"  # the identity form's field saying the number was picked, not typed


def _ours(summary: StudySummary) -> holds.Person:
    return holds.Person(
        summary.patient_id, summary.patient_name, summary.patient_birth_date, summary.patient_sex
    )


async def found(request: web.Request, job: Import) -> Search | None:
    """The identity step's worklist search (the default one, asked now, the first time, and
    audited for the person whose page asked it); None once the step is over."""
    if job.preview is None or job.stage is not Stage.PREVIEW:
        return None
    app = request.app
    summary = job.preview.summary
    place = app[WORKLIST]
    default = worklist_search.default_query(summary.patient_name, summary.patient_birth_date)
    if not place.configured:
        # Staff's words; the setting's name is in a quieter line for the administrator.
        return Search(default, problem=NoWorklist().detail)
    searches = app[SEARCHES]
    if job.transfer_id not in searches:
        searches[job.transfer_id] = await worklist_search.audited(
            request, job.transfer_id, place, default, _ours(summary), typed=False
        )
    return searches[job.transfer_id]


def form_values(app: web.Application, found: Search | None, job: Import) -> dict[str, Any]:
    """What the identity step's worklist part shows (the search form only with a worklist)."""
    if found is None or job.preview is None:
        return {"worklist": None}
    values = worklist_search.form_values(found, _ours(job.preview.summary))
    return {"worklist": found, "worklist_ready": app[WORKLIST].configured, **values}


def picked(
    app: web.Application, job: Import, form: MultiDictProxy[Any]
) -> reconcile.Demographics | None:
    """The worklist's record staff picked (looked up in this import's last search, never taken
    from the form), or None when they typed the number. Raises `WorklistPickStale`."""
    if not form.get(PICKED):
        return None
    key = (str(form.get("local_patient_id", "")), str(form.get("local_issuer", "")))
    last = app[SEARCHES].get(job.transfer_id)
    for c in (last.candidates or []) if last else []:
        if (c.patient_id, c.issuer_of_patient_id) == key:
            issuer = c.issuer_of_patient_id or app[IMPORTS].request.local_issuer
            return reconcile.Demographics(c.patient_id, issuer, c.patient_name, c.birth_date, c.sex)
    raise WorklistPickStale()


@routes.post("/imports/{transfer_id}/worklist")
async def search_worklist(request: web.Request) -> web.Response:
    """Search the worklist for this import's patient (POST: no patient data in a URL);
    audited (`worklist_search.audited`)."""
    job = request.app[IMPORTS].find(request.match_info["transfer_id"])
    if job is None:
        raise PageNotFound()
    form = await request.post()
    if job.preview is not None and job.stage is Stage.PREVIEW:
        place = request.app[WORKLIST]
        query = worklist_search.query_of(form)
        ours = _ours(job.preview.summary)
        request.app[SEARCHES][job.transfer_id] = await worklist_search.audited(
            request, job.transfer_id, place, query, ours, typed=True
        )
    raise web.HTTPSeeOther(f"/imports/{job.transfer_id}#worklist")
