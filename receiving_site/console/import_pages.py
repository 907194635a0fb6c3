"""One import's page, `/imports/<transfer id>`: the preview as soon as the study's summary
arrives (patient, how it was authorized, study, every series with a thumbnail), the identity
step (the local record number, each difference from the ER's patient ticked; each person's
check their own, `record_checks`), then the import's progress and its result. It refreshes
itself while something is happening: a small script updates the live parts, and without it a
plain refresh does.

The thumbnails are rendered by the agent from the verified staged images and served to the
signed-in user only, never kept by the browser (every console page is `no-store`).

Each record check (the PACS is asked about a patient) and each Continue is in the audit log,
with what the PACS answered or why the number could not be checked, never a patient's name.
A step's form posted from a page left open after the import moved on (another tab, another
registrar) changes nothing: it is recorded refused in the audit log, and redirected to the
import's page, which says so once to the person who posted it (`stale_step`), and does not
refresh itself under that notice."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from receiving_site import errors, holds, thumbnails
from receiving_site.console import (
    identity_check,
    import_worklist,
    record_checks,
    series,
    stale_step,
)
from receiving_site.console.appkeys import (
    CHECKS,
    CONFIRMING,
    IMPORTS,
    SEARCHES,
    THUMBNAILS,
)
from receiving_site.console.errors import (
    ContinuingCannotHelp,
    DifferencesNotTicked,
    PacsNotAsked,
    RecordNumberChanged,
    WorklistPickStale,
)
from receiving_site.console.imports import Import, Stage
from receiving_site.console.record_checks import Checked
from receiving_site.console.stale_step import Sent, StaleStep, Step
from receiving_site.preview import date, incomplete, person_name, sex_word, time
from receiving_site.redeem import CONSENT_FROM_SENDER
from site_agent.console import notices, render, user_of
from site_agent.console.appkeys import AUDIT, CLOCK, address_of, session_of
from site_agent.console.errors import PageNotFound
from site_agent.console.page_views import REFRESHED, audited
from site_agent.console.sessions import Session
from site_agent.local_time import utc_time

routes = web.RouteTableDef()

LIVE = (Stage.STARTING, Stage.OPENING, Stage.IMPORTING)  # refreshed without a person's action
ACK = "ack-"  # the form fields acknowledging one difference each: ack-name, ack-birth-date...


def _job(request: web.Request) -> Import:
    job = request.app[IMPORTS].find(request.match_info["transfer_id"])
    if job is None:
        raise PageNotFound()
    return job


def _session(request: web.Request) -> Session:
    """The signed-in session: every route here runs only for one (checked before it)."""
    session = session_of(request)
    assert session is not None
    return session


def _hold_rows(job: Import) -> list[tuple[str, str, str, bool]]:
    """The ER's patient and the PACS's record side by side, when a hold names one."""
    if job.hold is None or job.hold.pacs is None or job.preview is None:
        return []
    s = job.preview.summary
    sent = holds.Person(s.patient_id, s.patient_name, s.patient_birth_date, s.patient_sex)
    return holds.compared(sent, job.hold.pacs)


async def _page(
    request: web.Request,
    job: Import,
    *,
    problem: str = "",
    status: int = 200,
    typed: str = "",
    refused: bool = False,
    stale: StaleStep | None = None,
) -> web.Response:
    """The import's page; `typed`, the record number staff typed, back in its field with a
    `problem` (only in the page the POST answers), marked invalid when `refused` (the number
    itself, not a PACS that could not be asked); `stale`, what a step posted from a page left
    open is told (the page then waits for the person to close it, not refreshing itself)."""
    rows = await asyncio.to_thread(series.rows, job)
    found = await import_worklist.found(request, job)
    checks, session = request.app[CHECKS], _session(request)
    summary = job.preview.summary if job.preview else None
    return render(
        request,
        "import.html",
        status=status,
        job=job,
        stage=job.stage.value,
        live=job.stage in LIVE and stale is None,
        stale=stale,
        summary=summary,
        rows=rows,
        check=checks.mine(job.transfer_id, session),
        elsewhere=record_checks.elsewhere(checks.others(job.transfer_id, session)),
        problem=problem,
        typed_mrn=typed,
        mrn_refused=refused,
        **import_worklist.form_values(request.app, found, job),
        hold_rows=_hold_rows(job),
        cannot_continue=ContinuingCannotHelp().detail,
        incomplete=incomplete(summary) if summary else None,
        consent_from_sender=CONSENT_FROM_SENDER,
        refreshed=REFRESHED,
        name=person_name,
        date=date,
        sex=sex_word,
        time=time,
        when=utc_time,
    )


@routes.get("/imports/{transfer_id}")
async def import_page(request: web.Request) -> web.Response:
    job = _job(request)
    await viewed(request, job.transfer_id)
    told = notices.take(request)
    return await _page(request, job, stale=told if isinstance(told, StaleStep) else None)


async def viewed(request: web.Request, transfer_id: str) -> None:
    """A person opened a page showing the study of `transfer_id` (the patient, its images): an
    access, audited as the ER console's views of a transfer are (`transfer-viewed`). The page's
    own refreshes while an import runs are not a new view: its script's (`X-Console-Refresh`),
    and without the script its meta refresh's (`?refreshed`) soon after the same person's last
    recorded view of the page (`page_views`)."""
    page = request.path.split("/", 2)[1]  # imports or holds
    await audited(request, "transfer-viewed", page=page, subject=transfer_id, transfer=transfer_id)


@routes.post("/imports/{transfer_id}/identity")
async def check_identity(request: web.Request) -> web.Response:
    """The local record number typed (or picked): ask the PACS what it holds for it. Each
    check is audited (`import-record-checked`): the number and issuer, whether it was picked
    on the worklist, and what the PACS answered (`identity_check.audited`), or why the number
    could not be checked (`identity_check.refused`)."""
    job = _job(request)
    form = await request.post()
    mrn = str(form.get("local_patient_id", "")).strip()
    from_worklist = bool(form.get(import_worklist.PICKED))
    sent = Sent(mrn, str(form.get("local_issuer", "")), from_worklist=from_worklist)
    if stale_step.is_stale(job, Step.RECORD_CHECK) or job.preview is None:
        return await _stale(request, job, Step.RECORD_CHECK, sent)
    imports = request.app[IMPORTS]
    pacs = imports.request.pacs
    assert pacs is not None  # an agent without a PACS redeems nothing (UNREADY)
    try:
        picked = import_worklist.picked(request.app, job, form)
    except WorklistPickStale as stale:
        return await _page(request, job, problem=stale.detail, status=stale.status)
    issuer = imports.request.local_issuer if picked is None else picked.issuer_of_patient_id
    asked: dict[str, object] = {
        "local_patient_id": mrn,
        "local_issuer": issuer,
        "from_worklist": picked is not None,
    }
    try:
        found = await identity_check.check(pacs, job.preview.summary, mrn, issuer, picked)
    except errors.IdentityHeld as e:
        outcome, why = identity_check.refused(e)
        await _record_checked(request, job, outcome, {**asked, "why": why})
        request.app[CHECKS].drop(job.transfer_id, _session(request))
        problem = e.message
        not_asked = isinstance(e, errors.IdentityNotChecked)
        if not_asked:  # not "answered unclearly": ask again
            problem = f"{problem} {PacsNotAsked().detail}"
        typed = mrn if picked is None else ""
        refused = bool(typed) and not not_asked
        return await _page(request, job, problem=problem, status=400, typed=typed, refused=refused)
    answered = identity_check.audited(found)
    if stale_step.is_stale(job, Step.RECORD_CHECK):  # confirmed by someone while the PACS answered
        return await _stale(request, job, Step.RECORD_CHECK, sent, **answered)
    await _record_checked(request, job, "success", {**asked, **answered})
    checked = Checked(found, user_of(request), request.app[CLOCK]())
    request.app[CHECKS].keep(job.transfer_id, _session(request), checked)
    raise web.HTTPSeeOther(f"/imports/{job.transfer_id}#identity")


async def _record_checked(
    request: web.Request, job: Import, outcome: str, detail: dict[str, object]
) -> None:
    """Audit a record check of `job` that went ahead: the PACS was asked about a patient (or,
    refused or failed, `why` not)."""
    await request.app[AUDIT].arecord(
        Step.RECORD_CHECK.value,
        who=user_of(request),
        where=address_of(request),
        outcome=outcome,
        transfer=job.transfer_id,
        **detail,
    )


@routes.post("/imports/{transfer_id}/import")
async def confirm_import(request: web.Request) -> web.Response:
    """Import under the local record this person checked (their session's check, never a
    colleague's later one: `record_checks`), once every difference is ticked. One
    confirmation at a time (`CONFIRMING`): two registrars' at once must not both pass the
    check that the import still waits for one; the second is told who confirmed which record
    (`stale_step`)."""
    job = _job(request)
    form = await request.post()
    async with request.app[CONFIRMING]:
        return await _confirm(request, job, form)


async def _confirm(request: web.Request, job: Import, form: Any) -> web.Response:
    check = request.app[CHECKS].mine(job.transfer_id, _session(request))
    if check is None or stale_step.is_stale(job, Step.CONFIRM):
        sent = Sent(str(form.get("local_patient_id", "")))
        return await _stale(request, job, Step.CONFIRM, sent)
    if str(form.get("local_patient_id", "")) != check.local_patient_id:  # checked in another tab
        changed = RecordNumberChanged()
        return await _page(request, job, status=changed.status, problem=changed.detail)
    acknowledged = {str(k)[len(ACK) :] for k in form if str(k).startswith(ACK)}
    filing = check.filing(acknowledged)
    if filing is None:
        unticked = DifferencesNotTicked()
        return await _page(request, job, status=unticked.status, problem=unticked.detail)
    user = user_of(request)
    await request.app[AUDIT].arecord(
        "import-confirmed",
        who=user,
        where=address_of(request),
        transfer=job.transfer_id,
        local_patient_id=filing.local_patient_id,
        local_issuer=check.issuer,
        from_worklist=check.worklist is not None,
        differences_acknowledged=sorted(acknowledged & set(check.required)),
    )
    request.app[IMPORTS].decide(job, filing, user, request.app[CLOCK]())
    request.app[CHECKS].forget(job.transfer_id)
    request.app[SEARCHES].pop(job.transfer_id, None)
    raise web.HTTPSeeOther(f"/imports/{job.transfer_id}")


@routes.post("/imports/{transfer_id}/continue")
async def continue_import(request: web.Request) -> web.Response:
    """Continue a stopped import from what this machine kept (never spends the code again);
    audited (`import-continued`) with the stage it continued from (held: Check again)."""
    job = _job(request)
    if stale_step.is_stale(job, Step.CONTINUE):
        return await _stale(request, job, Step.CONTINUE, Sent())
    # Resumed before the record is awaited: a second Continue pressed meanwhile then finds it
    # running (refused, moved on), not stopped (a second success that resumes nothing).
    stage = job.stage.value
    request.app[IMPORTS].resume(job)
    await request.app[AUDIT].arecord(
        Step.CONTINUE.value,
        who=user_of(request),
        where=address_of(request),
        transfer=job.transfer_id,
        stage=stage,
    )
    raise web.HTTPSeeOther(f"/imports/{job.transfer_id}")


async def _stale(
    request: web.Request, job: Import, step: Step, sent: Sent, **answered: object
) -> web.Response:
    """A `step` posted after `job` moved on: nothing done; recorded refused in the audit log
    (`why: moved-on`, the stage it found, the record number it sent, and what the PACS
    `answered` when a record check found the import moved on only once it had asked), and the
    import's page, after a redirect (a reload does not post it again), says so once to this
    session."""
    told = stale_step.notice(job, step, sent)
    sent_record = {"local_patient_id": sent.local_patient_id} if sent.local_patient_id else {}
    await request.app[AUDIT].arecord(
        step.value,
        who=user_of(request),
        where=address_of(request),
        outcome="refused",
        transfer=job.transfer_id,
        why=stale_step.WHY,
        stage=job.stage.value,
        **sent_record,
        already_confirmed=told.agrees,
        **answered,
    )
    page = f"/imports/{job.transfer_id}"
    notices.leave(request, page, told)
    raise web.HTTPSeeOther(page)


@routes.get("/imports/{transfer_id}/series/{number:[0-9]{1,4}}.png")
async def series_thumbnail(request: web.Request) -> web.Response:
    job = _job(request)
    number = int(request.match_info["number"])
    imports = request.app[IMPORTS]
    try:
        picture = await series.thumbnail(job, number, imports.state_dir, request.app[THUMBNAILS])
    except OSError:
        picture = thumbnails.placeholder()
    return web.Response(body=picture, content_type="image/png")
