"""A transfer in the ER console: the push job until the transfer exists, then the transfer's
page with live progress, the authorization link's QR for the family's phone, break-glass, the
code with its QR and printable sheet, and its status as it changes. Re-issue and revoke.

Secrets (the code, the capability, the authorization link) appear only in page bodies and POST
responses, never in an address or a log line; every view and action is audited.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from sending_site import abandon, journal, refusals
from sending_site.agent.jobs import Job, start_push
from sending_site.break_glass import add_break_glass, problem_with
from sending_site.console.appkeys import JOBS, SETTINGS
from sending_site.console.words import moved_on, percent, progress_words
from sending_site.errors import BadSitePhone, SendingError, TransferJournalError
from sending_site.reissue import PHONE_NOT_UPDATED, reissue, sheet_of
from sending_site.sheet import SITE_PHONE_ENV, site_phone
from sending_site.sheet import render as render_sheet
from sending_site.transfers import list_transfers, revoke, status_words
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from site_agent.console import notices, render, user_of
from site_agent.console.appkeys import AUDIT, RELAY_CREDENTIAL, address_of
from site_agent.console.errors import PageNotFound
from site_agent.console.page_views import list_viewed
from site_agent.errors import AgentError, outcome_unknown
from transfer_codes.codes import RedemptionCode
from transfer_codes.phone import authorization_link
from transfer_codes.qr import render_png
from transfer_codes.wire import TransferState

routes = web.RouteTableDef()
LOGGER = logging.getLogger(__name__)
WAITING = {TransferState.CREATED, TransferState.AWAITING_AUTHORIZATION}
OVER = {TransferState.REVOKED, TransferState.EXPIRED, TransferState.DELIVERED}
# What the relay lets the sending site do in each state (`relay.lifecycle`).
REISSUABLE = {TransferState.AWAITING_AUTHORIZATION, TransferState.AUTHORIZED, TransferState.LOCKED}
REVOCABLE = {*WAITING, TransferState.AUTHORIZED, TransferState.LOCKED}
PAPERS = ("a4", "letter")


def _qr(text: str) -> str:
    """A QR as a `data:` address for an <img> (allowed by the console's CSP)."""
    return "data:image/png;base64," + base64.b64encode(render_png(text)).decode("ascii")


def _job(request: web.Request) -> Job:
    job = request.app[JOBS].get(request.match_info["job_id"])
    if job is None:
        raise PageNotFound()
    return job


def _record(request: web.Request) -> journal.TransferJournal:
    try:
        return journal.load(request.app[SETTINGS].state.folder, request.match_info["transfer_id"])
    except (TransferJournalError, ValueError) as e:
        raise PageNotFound() from e


def _credential(request: web.Request) -> str:
    return request.app[RELAY_CREDENTIAL].read()


async def _status(
    request: web.Request, record: journal.TransferJournal
) -> tuple[dict[str, Any], str]:
    """The relay's status of the transfer, or an empty one and why it is not known. The trauma
    center's display name it gives is kept in the journal, to name it while the relay is out
    of reach (`_recipient`)."""
    try:
        async with RelayClient(record.relay, _credential(request)) as client:
            status = await client.status(record.transfer_id)
    except (RelayUnreachable, RelayRefused) as e:
        return {}, f"The status is not known just now: {e.for_console} This page tries again."
    shown = _display_name(status)
    if shown and shown != record.recipient_display_name:
        folder = request.app[SETTINGS].state.folder
        await asyncio.to_thread(journal.remember_recipient, folder, record, shown)
    return status, ""


def _display_name(relay_status: dict[str, Any]) -> str:
    return str((relay_status.get("recipient") or {}).get("display_name") or "")


async def _audit(
    request: web.Request,
    action: str,
    transfer_id: str,
    outcome: str = "success",
    **detail: object,
) -> None:
    await request.app[AUDIT].arecord(
        action,
        who=user_of(request),
        where=address_of(request),
        outcome=outcome,
        transfer=transfer_id,
        **detail,
    )


@contextlib.asynccontextmanager
async def _audited_refusal(
    request: web.Request, action: str, transfer_id: str, **detail: object
) -> AsyncIterator[None]:
    """A staff action the relay or this agent refuses is audited too (what refused it, not the
    sentence, which may hold a code; with `detail`, as its success is), then shown as the calm
    error page. Outcome refused, or unknown when the request left and no answer came
    (`outcome_unknown`: the relay may have done it)."""
    try:
        yield
    except (SendingError, AgentError) as e:
        why = type(e).__name__
        outcome = "unknown" if outcome_unknown(e) else "refused"
        await _audit(request, action, transfer_id, outcome=outcome, why=why, **detail)
        raise


def _site_phone(request: web.Request) -> str:
    """The phone number the sheet prints: the agent's setting, else TRAUMA_RELAY_SITE_PHONE.
    One the environment gives that is no phone number leaves a line to write it on (and a log
    line for the administrator): the sheet must still print."""
    configured = request.app[SETTINGS].sheet.site_phone
    if configured:
        return site_phone(configured)
    try:
        return site_phone(None)
    except BadSitePhone:
        LOGGER.warning("%s is not a phone number; the sheet leaves a line for it.", SITE_PHONE_ENV)
        return ""


NO_SHEET = (
    "No sheet was printed: this transfer's code no longer works (see its state below). If it is "
    "locked, give it a new code first."
)


def _code_works(state: str, record: journal.TransferJournal) -> bool:
    """Whether the transfer's code can still be redeemed, so shown and printed: not over, not
    given up, not locked (a new code unlocks it) and not spent; and the relay took it (a
    re-issue whose answer never came leaves a code it may not hold: `_unconfirmed`)."""
    return (
        state not in OVER
        and not record.abandoned
        and state not in (TransferState.LOCKED, TransferState.REDEEMED)
        and record.code_confirmed
    )


def _unconfirmed(record: journal.TransferJournal) -> str:
    """What the page says in place of a code the relay may not have taken (a re-issue whose
    answer never came), and why no sheet is printed of it; "" for a confirmed code."""
    return "" if record.code_confirmed else refusals.unconfirmed(record.transfer_id).console


def _recipient(relay_status: dict[str, Any], record: journal.TransferJournal) -> str:
    """The trauma center as staff know it: by the name the relay shows, or last showed (the
    relay out of reach); by its name in the relay's registry only if it never said one."""
    return _display_name(relay_status) or record.recipient_display_name or record.recipient


def _version(
    state: str,
    job: Job | None,
    upload_finished: bool,
    record: journal.TransferJournal | None = None,
) -> str:
    """What the page shows that needs a reload when it changes (not the progress counts): with
    `record`, also its code, by how many codes were issued (a new code in another tab or the
    command line leaves the state as it was, and a dead code must not stay on screen), and
    whether it was given up here and whether the relay confirmed the code (`_unconfirmed`).
    Never the code, nor anything made from it: the status document carrying this is polled,
    and an address's answer may be kept where the page's body is not."""
    ended = job is not None and job.record.ended
    following = _following(job)
    codes = len(record.issued_at) if record else 0
    given_up = bool(record and record.abandoned)
    problem = bool(job and job.record.problem)
    confirmed = record is None or record.code_confirmed
    code = f"{codes}|{given_up}|{confirmed}"
    return f"{state}|{upload_finished}|{ended}|{problem}|{following}|{code}"


def _told(relay_status: dict[str, Any]) -> str:
    """The relay's state with what the trauma center reported without changing it (a review
    copy kept, a discard), and who authorized and whether by break-glass, which the page
    says: the page is reloaded when any changes."""
    receipt = relay_status.get("receipt") or {}
    told = f"{relay_status.get('state', 'unknown')}|{receipt.get('destination', '')}"
    return f"{told}|{relay_status.get('authorized_by')}|{bool(relay_status.get('break_glass'))}"


def _following(job: Job | None) -> bool:
    """Whether the job's push still waits for more images of the study."""
    return job is not None and job.running and job.arriving


def _progress(job: Job | None, upload_finished: bool) -> str:
    stopped = job is not None and job.record.ended and bool(job.record.problem)
    return progress_words(
        job.progress if job else None, upload_finished, _following(job), stopped=stopped
    )


# -- the push job, until the transfer exists -------------------------------------------------


@routes.get("/jobs/{job_id}")
async def job_page(request: web.Request) -> web.Response:
    job = _job(request)
    if job.record.transfer_id:
        raise web.HTTPSeeOther(f"/transfers/{job.record.transfer_id}")
    return render(
        request,
        "job.html",
        job=job,
        refused="",
        progress=_progress(job, False),
        version=_version("", job, False),
    )


@routes.get("/jobs/{job_id}/status.json")
async def job_status(request: web.Request) -> web.Response:
    job = _job(request)
    return web.json_response(
        {
            "version": _version("", job, False) + f"|{job.record.transfer_id}",
            "progress": _progress(job, False),
            "percent": percent(job.progress, False),
            "retrying": job.retrying,
        }
    )


RETRY_REFUSED = (
    "Not tried again: trying again would not get past what stopped it. Nothing was changed; "
    "what stopped it, and what to do instead, is below."
)


@routes.post("/jobs/{job_id}/retry")
async def retry_job(request: web.Request) -> web.Response:
    job = _job(request)
    if job.record.ended and job.record.definitive:  # a "Try again" from a page left open
        await request.app[AUDIT].arecord(
            "transfer-started",
            who=user_of(request),
            where=address_of(request),
            outcome="refused",
            study=job.record.study_instance_uid,
            recipient=job.record.recipient,
            job=job.record.job_id,
            again=True,
        )
        return render(
            request,
            "job.html",
            status=409,
            job=job,
            refused=RETRY_REFUSED,
            progress=_progress(job, False),
            version=_version("", job, False),
        )
    if not job.running:
        await _start_again(request, job, replace_earlier=False)
    raise web.HTTPSeeOther(f"/jobs/{job.record.job_id}")


@routes.post("/jobs/{job_id}/replace")
async def replace_earlier(request: web.Request) -> web.Response:
    """Send the study as a new transfer where the push stopped at a delivered or live transfer of
    it (`JobRecord.replaceable`): push's --replace. That transfer's code stops working."""
    job = _job(request)
    if not job.running and job.record.replaceable:
        await _start_again(request, job, replace_earlier=True)
    raise web.HTTPSeeOther(f"/jobs/{job.record.job_id}")


async def _start_again(request: web.Request, job: Job, *, replace_earlier: bool) -> None:
    """Start `job`'s push again; `replace_earlier`: replacing what it stopped at. A job that was
    replacing and stopped before its own transfer existed (the earlier one not withdrawn yet)
    goes on replacing."""
    again = replace_earlier or job.record.replace
    record = replace(
        job.record, ended=False, problem="", replaceable=False, definitive=False, replace=again
    )
    start_push(request.app[JOBS], record)
    await request.app[AUDIT].arecord(
        "transfer-started",
        who=user_of(request),
        where=address_of(request),
        study=record.study_instance_uid,
        recipient=record.recipient,
        job=record.job_id,
        again=True,
        replace=again,
    )


# -- the transfer -----------------------------------------------------------------------------


@routes.get("/transfers")
async def transfers(request: web.Request) -> web.Response:
    running = {j.record.transfer_id for j in request.app[JOBS].all() if j.running}
    views = await list_transfers(
        request.app[SETTINGS].state.folder,
        _credential(request),
        uploading=running,
        at_console=True,
    )
    await list_viewed(request, "transfers", len(views))  # each names its patient
    return render(request, "transfers.html", views=views)


async def _transfer_page(
    request: web.Request,
    *,
    problem: str = "",
    notice: str = "",
    status: int = 200,
    glass: tuple[str, str] | None = None,
    fault: str = "",
) -> web.Response:
    """The transfer's page; `glass`: the break-glass form's reason and clinician as typed, shown
    again (open) with the `problem` found in them; `fault`: the id of the field the problem is
    about first, focused and described by it."""
    record = _record(request)
    relay_status, unknown = await _status(request, record)
    job = request.app[JOBS].of_transfer(record.transfer_id)
    state = str(relay_status.get("state", "unknown"))
    finished = record.done and not record.abandoned
    await _audit(request, "transfer-viewed", record.transfer_id)
    # Discarded at the trauma center after review, it stays redeemed there but has ended: no
    # upload to follow, nothing to act on, the way back (as for the transfers that are over).
    discarded = abandon.discarded_there(state, relay_status.get("receipt"))
    live = state not in OVER and not record.abandoned and not discarded
    known = state in {s.value for s in TransferState}  # not "unknown": the relay answered
    # A locked code works no more and a redeemed one is spent: neither is shown or printed; nor
    # one the relay may not have taken (`unconfirmed` says so instead).
    show_code = _code_works(state, record)
    can_reissue = live and (not known or state in REISSUABLE)
    return render(
        request,
        "transfer.html",
        status=status,
        record=record,
        state=state,
        words=unknown
        or (
            status_words(
                relay_status,
                record,
                uploading=bool(job and job.running),
                at_console=True,
                code_note=False,
            )
            if relay_status
            else ""
        ),
        recipient=_recipient(relay_status, record),
        receipt=relay_status.get("receipt") if state == TransferState.DELIVERED else None,
        break_glass=bool(relay_status.get("break_glass")),
        waiting=state in WAITING and not relay_status.get("authorized_by"),
        live=live,
        show_code=show_code,
        unconfirmed=_unconfirmed(record) if can_reissue else "",
        locked=state == TransferState.LOCKED,
        can_reissue=can_reissue,
        can_revoke=live and (not known or state in REVOCABLE),
        code=RedemptionCode.parse(record.code).grouped() if show_code else "",
        code_qr=_qr(record.capability) if show_code else "",
        link_qr=_qr(authorization_link(record.relay, record.authorization_token, record.phone_key))
        if live and state in WAITING
        else "",
        job=job,
        following=_following(job),
        progress=_progress(job, finished),
        percent=percent(job.progress if job else None, finished),
        version=_version(_told(relay_status), job, finished, record),
        problem=problem,
        notice=notice,
        glass=glass,
        fault=fault,
        papers=PAPERS,
    )


REISSUED = (
    "A new code was issued: the old code, its QR and the old sheet no longer work. Print the new "
    "transfer sheet for the patient."
)
DONE = {
    "reissued": REISSUED,
    "reissued-phone-not-updated": f"{REISSUED} {PHONE_NOT_UPDATED}",
    "stopped": "No more images are waited for: the transfer closes with what has arrived, and "
    "the trauma center is told the study is incomplete and does not import it as the whole "
    "study. Once every image has arrived, send the study again from its page: the new transfer "
    "replaces this one.",
    "revoked": "The transfer is revoked: its code and QR no longer work, and the family's phone "
    "says it was cancelled.",
}


@dataclass(frozen=True)
class NoNewCode:
    """What a "Give a new code" that met a transfer moved on leaves for the transfer's page,
    shown there once to the person who pressed it (`notices`): why none was given."""

    sentence: str


@routes.get("/transfers/{transfer_id}")
async def transfer_page(request: web.Request) -> web.Response:
    told = notices.take(request)
    problem = told.sentence if isinstance(told, NoNewCode) else ""
    notice = DONE.get(request.query.get("done", ""), "")
    return await _transfer_page(request, problem=problem, notice=notice)


@routes.get("/transfers/{transfer_id}/status.json")
async def transfer_status(request: web.Request) -> web.Response:
    record = _record(request)
    relay_status, _ = await _status(request, record)
    job = request.app[JOBS].of_transfer(record.transfer_id)
    finished = record.done and not record.abandoned
    progress = job.progress if job else None
    return web.json_response(
        {
            "version": _version(_told(relay_status), job, finished, record),
            "progress": _progress(job, finished),
            "percent": percent(progress, finished),
            "retrying": job.retrying if job else "",
        }
    )


@routes.post("/transfers/{transfer_id}/stop-following")
async def stop_following(request: web.Request) -> web.Response:
    """Staff stop waiting for more images: what has arrived is sent, and the manifest is
    closed marked incomplete, so the trauma center is told plainly."""
    record = _record(request)
    job = request.app[JOBS].of_transfer(record.transfer_id)
    if job is not None and job.stop_following():
        await _audit(request, "following-stopped", record.transfer_id)
        raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}?done=stopped")
    raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}")


@routes.post("/transfers/{transfer_id}/break-glass")
async def break_glass(request: web.Request) -> web.Response:
    record = _record(request)
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    clinician = str(form.get("clinician", "")).strip()
    # The reason's problem, then the clinician's in the console's words (the command line's
    # name its option).
    reason_problem = problem_with(reason, clinician or "given")
    parts = [reason_problem[0].upper() + reason_problem[1:]] if reason_problem else []
    if not clinician:
        parts.append("Enter the name of the clinician who authorizes, then press the button again.")
    problem = " ".join(parts)
    if problem:
        # A form to correct, not audited: nothing was asked of the relay or the plan (as Send
        # without a trauma center, or a PACS search with nothing filled in).
        fault = "reason" if reason_problem else "clinician"
        glass = (reason, clinician)
        return await _transfer_page(request, status=400, problem=problem, glass=glass, fault=fault)
    # Refused (given up, already authorized by the patient or family, too early, too late, or
    # by the relay): audited too, with the clinician who tried, never the reason.
    async with _audited_refusal(request, "break-glass", record.transfer_id, clinician=clinician):
        added = await add_break_glass(
            request.app[SETTINGS].state.folder,
            record.transfer_id,
            None,
            _credential(request),
            reason,
            clinician,
        )
    # The reason may describe the patient: it is sealed for the trauma center, not kept here.
    await _audit(
        request, "break-glass", record.transfer_id, clinician=clinician, already=added.already
    )
    raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}")


async def _asking(request: web.Request, allowed: set[TransferState], page: str) -> web.Response:
    """A page asking once more before re-issuing or revoking, offered in the states that
    allow it (as the transfer's page offers its link). Opened again once the transfer moved
    on (the back button, a page left open), it does not ask: the transfer's page says where it
    stands. A relay out of reach does not stop it: the action itself then says so."""
    record = _record(request)
    relay_status, _ = await _status(request, record)
    state = str(relay_status.get("state", "unknown"))
    known = state in {s.value for s in TransferState}
    if record.abandoned or state in OVER or (known and state not in allowed):
        raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}")
    # It names the patient: an access to the transfer, audited as its own page's views are.
    await _audit(request, "transfer-viewed", record.transfer_id, page=page.removesuffix(".html"))
    return render(request, page, record=record, recipient=_recipient(relay_status, record))


@routes.get("/transfers/{transfer_id}/reissue")
async def reissue_page(request: web.Request) -> web.Response:
    """Giving a new code stops the one travelling with the patient: asked once more."""
    return await _asking(request, REISSUABLE, "reissue.html")


async def _unless_moved_on(request: web.Request, record: journal.TransferJournal) -> None:
    """Return when a "Give a new code" may go on. One from a page left open that meets a
    transfer the relay allows no new code any more (redeemed, delivered, discarded at the
    trauma center, revoked or expired, here or elsewhere) is audited as refused and redirected
    to the transfer's page (a reload asks nothing again), which says once, to this session,
    that no new code was given and why (`NoNewCode`). A transfer given up here is left to
    `reissue`, whose refusal says how to send it again; a relay out of reach, to the re-issue
    itself, which says so."""
    if record.abandoned:
        return
    relay_status, unknown = await _status(request, record)
    state = str(relay_status.get("state", ""))
    if unknown or state not in {s.value for s in TransferState}:
        return
    discarded = abandon.discarded_there(state, relay_status.get("receipt"))
    if state in REISSUABLE and not discarded:
        return
    await _audit(
        request, "code-reissued", record.transfer_id, outcome="refused", why="moved-on", state=state
    )
    page = f"/transfers/{record.transfer_id}"
    notices.leave(request, page, NoNewCode(moved_on(state, discarded)))
    raise web.HTTPSeeOther(page)


@routes.post("/transfers/{transfer_id}/reissue")
async def reissue_code(request: web.Request) -> web.Response:
    record = _record(request)
    await _unless_moved_on(request, record)
    async with _audited_refusal(request, "code-reissued", record.transfer_id):
        done = await reissue(
            request.app[SETTINGS].state.folder, record.transfer_id, None, _credential(request)
        )
    # The page reads the relay's status itself (`done.status` None: it could not be read just
    # after; the page says so as for any read).
    phone = {} if done.phone_updated else {"phone": "not-updated"}
    await _audit(request, "code-reissued", record.transfer_id, **phone)
    told = "reissued" if done.phone_updated else "reissued-phone-not-updated"
    # To the page (POST, redirect, GET): reloading it must not issue yet another code.
    raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}?done={told}")


@routes.get("/transfers/{transfer_id}/revoke")
async def revoke_page(request: web.Request) -> web.Response:
    return await _asking(request, REVOCABLE, "revoke.html")


@routes.post("/transfers/{transfer_id}/revoke")
async def revoke_transfer(request: web.Request) -> web.Response:
    record = _record(request)
    async with _audited_refusal(request, "transfer-revoked", record.transfer_id):
        outcome = await revoke(
            request.app[SETTINGS].state.folder, record.transfer_id, _credential(request)
        )
    job = request.app[JOBS].of_transfer(record.transfer_id)
    if job is not None:
        # Never resumed: a revoked transfer's study would go again as a new transfer.
        if job.task is not None and job.running:
            job.task.cancel()
        request.app[JOBS].update(job, ended=True, problem="")
    await _audit(request, "transfer-revoked", record.transfer_id, outcome_words=outcome)
    raise web.HTTPSeeOther(f"/transfers/{record.transfer_id}?done=revoked")


@routes.post("/transfers/{transfer_id}/sheet")
async def sheet(request: web.Request) -> web.Response:
    record = _record(request)
    form = await request.post()
    paper = str(form.get("paper", "a4"))
    if paper not in PAPERS:
        paper = "a4"
    if not record.code_confirmed:  # a page left open meanwhile, or another tab's re-issue
        await _audit(request, "sheet-printed", record.transfer_id, outcome="refused")
        problem = f"No sheet was printed. {_unconfirmed(record)}"
        return await _transfer_page(request, status=409, problem=problem)
    relay_status, unknown = await _status(request, record)
    if unknown:
        return await _transfer_page(request, status=502, problem=unknown)
    if not _code_works(str(relay_status.get("state")), record):  # a page left open meanwhile
        await _audit(request, "sheet-printed", record.transfer_id, outcome="refused")
        return await _transfer_page(request, status=409, problem=NO_SHEET)
    pdf = render_sheet(
        sheet_of(record, relay_status, relay=record.relay, site_phone=_site_phone(request)), paper
    )
    await _audit(request, "sheet-printed", record.transfer_id)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="transfer-{record.transfer_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )
