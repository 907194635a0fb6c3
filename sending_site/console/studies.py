"""Recent studies (from the inbox index), a study's page with its completeness and the choice
of trauma center, starting its transfer, and adding a PDF report to it. Addresses name a study
by the index's own id, never its Study Instance UID (addresses end up in access logs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from sending_site import journal
from sending_site.abandon import study_digest
from sending_site.agent.jobs import new_job, start_push
from sending_site.console.appkeys import JOBS, SETTINGS
from sending_site.console.words import study_words
from sending_site.errors import ReportNotPdf, ReportTooLarge
from sending_site.inbox import errors as inbox_errors
from sending_site.inbox.completeness import CompletenessReport, assess
from sending_site.inbox.deposit import add_report
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.readiness import completeness_of
from sending_site.inbox.spool import Spool
from sending_site.preflight import destinations
from sending_site.report import MAX_REPORT_BYTES
from sending_site.settings import inbox_settings
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from site_agent.console import page_views, render, user_of
from site_agent.console.appkeys import AUDIT, RELAY_CREDENTIAL, address_of
from site_agent.console.errors import PageNotFound
from site_agent.console.page_views import list_viewed
from site_agent.console.uploads import takes_uploads
from site_agent.errors import AgentError

routes = web.RouteTableDef()
ACKNOWLEDGE = "Tick the box to say you have read the warnings, then send again, or wait."
WARNINGS_CHANGED = (
    "There is a new warning since the page was opened: read the warnings again, then tick the "
    "box and send, or wait."
)


def warned(report: CompletenessReport) -> str:
    """What the study page's send form carries of the warnings it showed
    (`CompletenessReport.warned_about`), one per line, so that a warning staff have not seen
    is never recorded as read."""
    return "\n".join(sorted(report.warned_about()))


NO_REPORT = "Choose the report's PDF file, then press Add the report."
ADDED = "The report was added: it is listed below as one more series"
DONE = {"report": f"{ADDED}, and goes with the images when the study is sent."}
REPORT_FOLLOWS = f"{ADDED}, and goes with the images being sent now."
REPORT_AFTER = (
    f"{ADDED}, but the images were already sent without it (transfer {{transfer}}). To send it, "
    "send the study again and choose Send as a new transfer: the images go again with the "
    "report, under a new code that replaces the earlier one."
)
STUDY = r"/studies/{study_id:\d+}"


@asynccontextmanager
async def reading(spool: Path) -> AsyncIterator[InboxIndex | None]:
    """The inbox index, read-only beside the running inbox; None before anything arrived."""
    try:
        index = await InboxIndex.open(Spool(spool).index, read_only=True)
    except inbox_errors.StudyNotSpooled:
        yield None
        return
    try:
        yield index
    finally:
        await index.close()


async def _listing(request: web.Request, search: str) -> web.Response:
    """The recent studies, or those `search` finds, each naming its patient: audited every
    time a person is shown them, as a view of the list (`list-viewed`, when it lists anyone) or
    as a search (`studies-searched`, with how many it found, never what was typed)."""
    settings = request.app[SETTINGS]
    now = time.time()
    rows: list[dict[str, Any]] = []
    async with reading(settings.spool.folder) as index:
        for listing in await index.studies(search) if index else []:
            study = await index.study(listing.study_instance_uid) if index else None
            report = (
                assess(study, None, now=now, stable_after=settings.spool.stable_age)
                if study
                else None
            )
            rows.append({"listing": listing, "words": study_words(listing), "report": report})
    if search.strip():  # a person's own search, never a refresh
        await request.app[AUDIT].arecord(
            "studies-searched",
            who=user_of(request),
            where=address_of(request),
            page="studies",
            found=len(rows),
        )
    else:
        await list_viewed(request, "studies", len(rows))
    return render(request, "sender_home.html", rows=rows, search=search, dicom=settings.dicom)


@routes.get("/")
async def recent(request: web.Request) -> web.Response:
    return await _listing(request, "")


@routes.post("/")
async def search(request: web.Request) -> web.Response:
    form = await request.post()
    return await _listing(request, str(form.get("search", ""))[:64])


async def _destinations(request: web.Request) -> tuple[list[Any], str]:
    """The relay's trauma centers, or why they could not be listed."""
    settings = request.app[SETTINGS]
    try:
        async with RelayClient(settings.relay.url, _credential(request)) as client:
            return await destinations(client, retry_for=0), ""
    except (RelayUnreachable, RelayRefused) as e:
        return [], f"{e.for_console} The list of trauma centers could not be loaded: try again."
    except AgentError as e:  # the settings or the credential, in the console's words
        return [], e.for_console


def _credential(request: web.Request) -> str:
    return request.app[RELAY_CREDENTIAL].read()


async def _report(request: web.Request, uid: str) -> tuple[Any, CompletenessReport]:
    settings = request.app[SETTINGS]
    async with reading(settings.spool.folder) as index:
        study = await index.study(uid) if index else None
        if index is None or study is None:
            raise inbox_errors.StudyNotSpooled()
        report = await completeness_of(inbox_settings(settings), index, uid, time.time())
    return study, report


async def _study_uid(request: web.Request) -> str:
    """The Study Instance UID of the study the address names by its index id."""
    async with reading(request.app[SETTINGS].spool.folder) as index:
        uid = await index.study_instance_uid(int(request.match_info["study_id"])) if index else None
    if uid is None:
        raise PageNotFound()
    return uid


async def _study_page(
    request: web.Request,
    uid: str,
    *,
    problem: str = "",
    notice: str = "",
    status: int = 200,
    chosen: str = "",
    fault: str = "",
) -> web.Response:
    """The study's page; `chosen`: the trauma center a refused send had picked, picked again;
    `fault`: the id of the control the `problem` is about, focused and described by it."""
    study, report = await _report(request, uid)
    sites, relay_problem = await _destinations(request)
    running = [
        j for j in request.app[JOBS].all() if j.record.study_instance_uid == uid and j.running
    ]
    return render(
        request,
        "study.html",
        status=status,
        study=study,
        words=study_words(study),
        report=report,
        findings=report.findings(),
        warnings=warned(report),
        sites=sites,
        relay_problem=relay_problem,
        problem=problem,
        notice=notice,
        running=running[0] if running else None,
        chosen=chosen,
        fault=fault,
    )


@routes.get(STUDY)
async def study_page(request: web.Request) -> web.Response:
    uid = await _study_uid(request)
    # It names the patient: a person's opening is an access, as a transfer's page is (its
    # own refreshes are not: `page_views`). By the inbox's id, as the address names it.
    study = request.match_info["study_id"]
    await page_views.audited(request, "study-viewed", page="study", subject=study, study=study)
    done = request.query.get("done", "")
    notice = await _report_notice(request, uid) if done == "report" else DONE.get(done, "")
    return await _study_page(request, uid, notice=notice)


async def _report_notice(request: web.Request, uid: str) -> str:
    """Whether the report just added goes with the images: a push following the study takes
    it; one that finished did not, and says which transfer went without it."""
    following = [
        j
        for j in request.app[JOBS].all()
        if j.record.study_instance_uid == uid and j.running and j.arriving
    ]
    if following:
        return REPORT_FOLLOWS
    digest = study_digest(uid)
    folder = request.app[SETTINGS].state.folder
    sent = [
        record
        for record in await asyncio.to_thread(journal.every, folder)
        if digest in record.studies and record.done and not record.abandoned
    ]
    if sent:
        latest = max(sent, key=lambda r: r.created_at)
        return REPORT_AFTER.format(transfer=latest.transfer_id)
    return DONE["report"]


@routes.post(STUDY + "/report")
@takes_uploads(MAX_REPORT_BYTES + 1024 * 1024)  # the PDF and the form around it
async def report_upload(request: web.Request) -> web.Response:
    """Add a PDF report to the study, as `trauma-relay sender report` does (`add_report`)."""
    uid = await _study_uid(request)
    form = await request.post()
    upload = form.get("report")
    if not isinstance(upload, web.FileField):
        return await _study_page(request, uid, status=400, problem=NO_REPORT, fault="report")
    with upload.file:
        pdf = await asyncio.to_thread(upload.file.read)
    audit, user, where = request.app[AUDIT], user_of(request), address_of(request)
    try:
        await add_report(request.app[SETTINGS].spool.folder, uid, pdf)
    except (ReportNotPdf, ReportTooLarge, inbox_errors.InstanceNotKept) as e:
        await audit.arecord(
            "report-refused", who=user, where=where, outcome="refused", study=uid, why=str(e)
        )
        return await _study_page(request, uid, status=400, problem=str(e), fault="report")
    await audit.arecord("report-added", who=user, where=where, study=uid, size=len(pdf))
    raise web.HTTPSeeOther(f"/studies/{request.match_info['study_id']}?done=report")


ELSEWHERE = (
    "This study is being sent to {going} now; nothing was sent to {chosen}. Follow that "
    "transfer with the link below; once its upload has ended, send the study again to {chosen}."
)


async def _elsewhere(request: web.Request, going: str, chosen: str) -> str:
    """`ELSEWHERE`, the trauma centers by the names the relay's list shows."""
    sites, _ = await _destinations(request)
    shown = {site.name: site.display_name or site.name for site in sites}
    return ELSEWHERE.format(going=shown.get(going, going), chosen=shown.get(chosen, chosen))


@routes.post(STUDY + "/send")
async def send(request: web.Request) -> web.Response:
    """Start the transfer: warnings must have been acknowledged (and are audited)."""
    uid = await _study_uid(request)
    form = await request.post()
    recipient = str(form.get("recipient", "")).strip()
    _, report = await _report(request, uid)
    findings = report.findings()
    if not recipient:
        return await _study_page(
            request,
            uid,
            status=400,
            problem="Choose the trauma center, then send.",
            fault="recipient",
        )
    if findings and form.get("acknowledge") != "yes":
        return await _study_page(
            request, uid, status=400, problem=ACKNOWLEDGE, chosen=recipient, fault="acknowledge"
        )
    # The page's form says which warnings it showed; a script posting the form without them
    # acknowledges the warnings as they are.
    shown = form.get("warnings")
    if findings and shown is not None and report.warned_about() - set(str(shown).splitlines()):
        return await _study_page(
            request,
            uid,
            status=400,
            problem=WARNINGS_CHANGED,
            chosen=recipient,
            fault="acknowledge",
        )
    jobs, user = request.app[JOBS], user_of(request)
    audit, where = request.app[AUDIT], address_of(request)
    if findings:
        await audit.arecord(
            "completeness-acknowledged",
            who=user,
            where=where,
            study=uid,
            warnings=findings,
            choice="send anyway",
        )
    running = [j for j in jobs.all() if j.record.study_instance_uid == uid and j.running]
    if running and running[0].record.recipient != recipient:
        # Another trauma center than the push under way (a second tab, the back button): not
        # taken for it, and nothing sent to the one chosen.
        return await _study_page(
            request,
            uid,
            status=409,
            problem=await _elsewhere(request, running[0].record.recipient, recipient),
            chosen=recipient,
        )
    if running:  # a second click, or a colleague: follow the push already under way
        raise web.HTTPSeeOther(f"/jobs/{running[0].record.job_id}")
    job = start_push(jobs, new_job(uid, recipient, user, time.time()))
    await audit.arecord(
        "transfer-started",
        who=user,
        where=where,
        study=uid,
        recipient=recipient,
        job=job.record.job_id,
        complete=not findings,
    )
    raise web.HTTPSeeOther(f"/jobs/{job.record.job_id}")
