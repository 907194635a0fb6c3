"""The holds queue in the trauma console: `/holds` lists every study held on this machine with
its reason and the patient's two sides (as the ER sent them, as the PACS holds them);
`/holds/<transfer id>` shows one with a form per choice. A choice is posted with the console's
CSRF token and an explicit confirmation, and carried out by `holds_queue.decide`, the same
resumed redemption the command line runs, recorded in the audit log under the signed-in user.

A choice posted about a study someone else resolved meanwhile (another tab, another machine, the
command line) is recorded refused in the audit log and redirected to the study's page (post,
redirect, get: a reload sends nothing again), which says what became of it, and once, to the
person who posted, that their click changed nothing (`hold_resolved`); an address that never
was a held study here is answered with a page saying so (404).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from receiving_site import errors, hold_record, holds, holds_queue, state
from receiving_site.console import hold_resolved, import_pages, worklist_search
from receiving_site.console.appkeys import IMPORTS
from receiving_site.console.errors import BeingCheckedAgain, NoSuchHold
from receiving_site.console.hold_options import hold_options
from receiving_site.hold_record import HeldStudy
from receiving_site.holds_queue import Choice, Decision, Place
from receiving_site.preview import sex_word
from receiving_site.settings import ReceiverSettings
from site_agent.console import notices, render, user_of
from site_agent.console.appkeys import AUDIT, CLOCK, RELAY_CREDENTIAL, address_of
from site_agent.console.page_views import list_viewed
from site_agent.dicom_text import date, how_many_images, person_name
from site_agent.errors import AgentError
from site_agent.local_time import utc_time
from transfer_codes.tokens import is_transfer_id

SETTINGS = web.AppKey("receiver_holds_settings", ReceiverSettings)
REVIEW_FOLDER = "review-copies"  # under the state folder: where "save to folder" saves

routes = web.RouteTableDef()


def setup(app: web.Application, settings: ReceiverSettings) -> None:
    app[SETTINGS] = settings


@dataclass(frozen=True)
class Side:
    label: str
    ours: str
    theirs: str
    differs: bool


def _sides(held: HeldStudy) -> list[Side]:
    if held.theirs is not None:
        return [Side(*row) for row in holds.compare(held.ours, held.theirs)]
    ours = held.ours
    return [
        Side("Patient ID", ours.patient_id, "", False),
        Side("Name", person_name(ours.name), "", False),
        Side("Birth date", date(ours.birth_date), "", False),
        Side("Sex", sex_word(ours.sex), "", False),
    ]


def _view(held: HeldStudy) -> dict[str, Any]:
    return {
        "held": held,
        "when": utc_time(held.at),
        "sides": _sides(held),
        "patient": person_name(held.ours.name),
    }


def _place(request: web.Request) -> Place:
    return Place.of(request.app[SETTINGS], request.app[RELAY_CREDENTIAL].read())


@routes.get("/holds")
async def queue(request: web.Request) -> web.Response:
    state_dir = request.app[SETTINGS].state.folder
    found = await asyncio.to_thread(hold_record.held_studies, state_dir)
    await list_viewed(request, "holds", len(found))  # each names its patient
    partly = any(h.stored_in_pacs for h in found)
    return render(request, "holds.html", held=[_view(h) for h in found], partly=partly)


def _held(request: web.Request) -> HeldStudy | None:
    """The study held under the address's transfer id; None if none is (any more)."""
    return hold_record.load(request.app[SETTINGS].state.folder, request.match_info["transfer_id"])


def _delivered(state_dir: Path, transfer_id: str) -> state.Delivery | None:
    return state.delivery(state_dir, transfer_id) if is_transfer_id(transfer_id) else None


async def _fate(
    request: web.Request,
) -> tuple[hold_record.Resolved | None, state.Delivery | None]:
    """What this machine kept of what ended the hold at the address: who resolved it, the
    delivery (None, None: never held here, or nothing kept)."""
    transfer_id = request.match_info["transfer_id"]
    state_dir = request.app[SETTINGS].state.folder
    resolved = await asyncio.to_thread(hold_record.resolved, state_dir, transfer_id)
    delivered = await asyncio.to_thread(_delivered, state_dir, transfer_id)
    return resolved, delivered


def _no_such_hold(request: web.Request) -> web.Response:
    unknown = NoSuchHold()
    return render(
        request,
        "holds_gone.html",
        status=unknown.status,
        heading=unknown.title,
        happened=unknown.detail,
        unchanged="",
        known=False,
    )


async def _no_longer_held(request: web.Request) -> web.Response:
    """The page (GET) of an address where no study is held: resolved already, said plainly
    (200: a page, not a failure), with what the click of a POST that led here did, once, to
    the person who posted it (`hold_resolved.Clicked`); else no held study at all (404)."""
    told = notices.take(request)
    clicked = told if isinstance(told, hold_resolved.Clicked) else hold_resolved.Clicked()
    resolved, delivered = await _fate(request)
    if resolved is None and delivered is None and not clicked.was_held:
        return _no_such_hold(request)
    return render(
        request,
        "holds_gone.html",
        heading="Already dealt with",
        happened=hold_resolved.what_became_of_it(resolved, delivered),
        unchanged=hold_resolved.nothing_changed(clicked.choice),
        known=True,
    )


async def _posted_no_longer_held(
    request: web.Request, *, clicked: Choice | None = None, was_held: bool = False
) -> web.Response:
    """A POST (the choice `clicked`, or a worklist search) about an address where no study is
    held: resolved already (`was_held`: a decision found it resolved, and recorded its
    failure; or this machine kept what became of it), the choice recorded as refused, and
    redirected to the study's page (`_no_longer_held`), which says so once to this session;
    else the "No such held study" page (404; nothing done, nothing to record)."""
    resolved, delivered = await _fate(request)
    if resolved is None and delivered is None and not was_held:
        return _no_such_hold(request)
    if clicked is not None and not was_held:
        await _refused(request, clicked)
    # Known, so a transfer id (`_fate` and `_held` read only those): safe in an address.
    page = f"/holds/{request.match_info['transfer_id']}"
    notices.leave(request, page, hold_resolved.Clicked(clicked, was_held))
    raise web.HTTPSeeOther(page)


async def _refused(request: web.Request, choice: Choice) -> None:
    """Record a decision posted about a study no longer held, refused (the console records
    what staff were refused, as the ER console does; the command line's second try is not)."""
    await request.app[AUDIT].arecord(
        choice.value,
        who=user_of(request),
        where=address_of(request),
        outcome="refused",
        transfer_id=request.match_info["transfer_id"],
        why="no longer held",
    )


def _decide_page(
    request: web.Request,
    held: HeldStudy,
    *,
    problem: str = "",
    status: int = 200,
    found: worklist_search.Search | None = None,
) -> web.Response:
    settings = request.app[SETTINGS]
    options = hold_options(held)
    ours = held.ours
    found = found or worklist_search.Search(
        worklist_search.default_query(ours.name, ours.birth_date)
    )
    return render(
        request,
        "holds_decide.html",
        status=status,
        options=options,
        problem=problem,
        review_folder=str(_review_folder(settings)),
        local_issuer=held.local_issuer or settings.identity.local_issuer,
        worklist_ready=bool(settings.worklist.host)
        and any(o.choice is Choice.OTHER_RECORD for o in options),
        **worklist_search.form_values(found, ours),
        **_view(held),
    )


@routes.post("/holds/{transfer_id}/worklist")
async def search_worklist(request: web.Request) -> web.Response:
    """Search the worklist for the local record (POST: a patient's name stays out of URLs and
    access logs); audited (`worklist_search.audited`)."""
    held = _held(request)
    if held is None:
        return await _posted_no_longer_held(request)
    settings = request.app[SETTINGS]
    place = worklist_search.Worklist(settings.worklist, settings.pacs.calling_ae_title)
    query = worklist_search.query_of(await request.post())
    found = await worklist_search.audited(
        request, held.transfer_id, place, query, held.ours, typed=True
    )
    return _decide_page(request, held, found=found)


def _checked_again(request: web.Request, held: HeldStudy) -> bool:
    """Whether the console's import of `held` runs again (Check again on its page): it holds
    the transfer's turn until a person files it there, so a decision here would wait for it."""
    job = request.app[IMPORTS].find(held.transfer_id)
    return job is not None and job.running


@routes.get("/holds/{transfer_id}")
async def decide_page(request: web.Request) -> web.Response:
    held = _held(request)
    if held is None:
        return await _no_longer_held(request)
    await import_pages.viewed(request, held.transfer_id)
    problem = BeingCheckedAgain().detail if _checked_again(request, held) else ""
    return _decide_page(request, held, problem=problem)


def _review_folder(settings: ReceiverSettings) -> Path:
    """Where the console saves review copies: a fixed folder, never one typed in a browser
    (a console user must not choose where on the agent's computer files are written)."""
    return Path(settings.state.folder) / REVIEW_FOLDER


def _decision(choice: Choice, form: Any, settings: ReceiverSettings) -> Decision:
    return Decision(
        choice,
        local_patient_id=str(form.get("local_patient_id", "")),
        local_issuer=str(form.get("local_issuer", "")),
        folder=_review_folder(settings) if choice is Choice.SAVE_TO_FOLDER else None,
    )


@routes.post("/holds/{transfer_id}")
async def decide(request: web.Request) -> web.Response:
    held = _held(request)
    form = await request.post()
    try:
        choice: Choice | None = Choice(str(form.get("choice", "")))
    except ValueError:
        choice = None
    if held is None:
        return await _posted_no_longer_held(request, clicked=choice)
    if choice is None:
        return _decide_page(request, held, problem=errors.HoldChoiceRefused().message, status=400)
    if form.get("confirmed") != "yes":
        problem = "Tick the box to confirm your choice first. Nothing was done."
        return _decide_page(request, held, problem=problem, status=400)
    if _checked_again(request, held):
        busy = BeingCheckedAgain()
        return _decide_page(request, held, problem=busy.detail, status=busy.status)
    settings = request.app[SETTINGS]
    imports = request.app[IMPORTS]
    try:
        decided = await holds_queue.decide(
            _place(request),
            held.transfer_id,
            _decision(choice, form, settings),
            audit=request.app[AUDIT],
            who=user_of(request),
            where=address_of(request),
            clock=request.app[CLOCK],
        )
    except errors.HoldNotFound:  # resolved meanwhile; recorded as this decision's failure
        return await _posted_no_longer_held(request, clicked=choice, was_held=True)
    except errors.ReceivingError as e:
        again = hold_record.load(settings.state.folder, held.transfer_id)
        if again is None:
            return await _posted_no_longer_held(request, clicked=choice, was_held=True)
        imports.held_again(
            held.transfer_id, again, e.hold if isinstance(e, errors.IdentityHeld) else None
        )
        return _decide_page(request, again, problem=e.message, status=409)
    except AgentError as e:
        return _decide_page(request, held, problem=e.for_console, status=503)
    # The console's own page of that import (and its list) says what became of it.
    result, who = decided.result, user_of(request)
    if result is None:
        imports.discarded(held.transfer_id, decided.held, who)
    elif result.review_command:
        still = hold_record.load(settings.state.folder, held.transfer_id)
        if still is not None:
            imports.held_again(held.transfer_id, still, None)
    else:
        imports.resolved(held.transfer_id, result, who)
    # Post, redirect, get: what was done is said once, on a page a reload does not post again
    # (which would meet a study no longer held, and record a refusal of the same person).
    page = f"/holds/{held.transfer_id}/done"
    notices.leave(request, page, _Done(_headline(decided), _done(decided)))
    raise web.HTTPSeeOther(page)


@dataclass(frozen=True)
class _Done:
    """What a decision did, for its outcome page: its heading and its sentence."""

    headline: str
    sentence: str


@routes.get("/holds/{transfer_id}/done")
async def done_page(request: web.Request) -> web.Response:
    """What the decision just posted did, said once to the person who posted it; opened again
    (a reload, the back button, another person), the study's own page (`decide_page`), which
    says where it stands."""
    transfer_id = request.match_info["transfer_id"]
    if not is_transfer_id(transfer_id):
        return _no_such_hold(request)
    told = notices.take(request)
    if not isinstance(told, _Done):
        raise web.HTTPSeeOther(f"/holds/{transfer_id}")
    return render(
        request, "holds_done.html", ok=True, headline=told.headline, sentence=told.sentence
    )


def _headline(decided: holds_queue.Decided) -> str:
    """The outcome page's heading and title: what was done, and to whose study."""
    result = decided.result
    patient = person_name(decided.held.ours.name)
    if result is None:
        return f"Discarded: {patient}"
    if result.review_command:
        return f"Saved for review: {patient}"
    if result.filed_under is not None:
        return f"Stored under {result.filed_under.patient_id}: {patient}"
    return f"Stored in the PACS: {patient}"


def told_sender(told: bool) -> str:
    """What the sending hospital learns of a discard."""
    if told:
        return (
            "The emergency department that sent it sees that it was discarded here; call them "
            "if you still need the images: they can send them again, with a new code."
        )
    return (
        "The relay could not be told, so the emergency department that sent it does not know: "
        "call them, and ask them to send the images again if you still need them."
    )


def _done(decided: holds_queue.Decided) -> str:
    result = decided.result
    patient = person_name(decided.held.ours.name)
    in_pacs = decided.held.stored_in_pacs
    if result is None:
        removed = f"The images of {patient} were removed from this machine."
        if in_pacs:
            removed += (
                f" The {in_pacs} already stored in the PACS are still there, and the study "
                "there is INCOMPLETE: tell radiology, and ask the PACS administrators to "
                "remove them if they must not stay."
            )
        return f"{removed} {told_sender(decided.sender_told)}"
    if result.review_command:
        pacs = "Nothing went to the PACS"
        if in_pacs:
            pacs = f"Nothing more went to the PACS (it still has {in_pacs}, INCOMPLETE)"
        return (
            f"Saved {how_many_images(result.instances)} of {patient} for review in "
            f"{result.destination}. {pacs}; the study stays in the holds queue."
        )
    filed = ""
    if result.filed_under is not None:
        local = result.filed_under
        filed = f" under patient ID {local.patient_id}, as {person_name(local.patient_name)}"
    return f"Stored {how_many_images(result.instances)} of {patient} in the PACS{filed}."


@routes.get("/holds-style.css")
async def style(request: web.Request) -> web.Response:
    text = resources.files(__package__).joinpath("holds.css").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="text/css")
