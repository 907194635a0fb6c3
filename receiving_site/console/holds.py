"""The holds queue in the trauma console: `/holds` lists every study held on this machine with
its reason and the patient's two sides (as the ER sent them, as the PACS holds them);
`/holds/<transfer id>` shows one with a form per choice. A choice is posted with the console's
CSRF token and an explicit confirmation, and carried out by `holds_queue.decide`, the same
resumed redemption the command line runs, recorded in the audit log under the signed-in user.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from receiving_site import errors, hold_record, holds, holds_queue
from receiving_site.hold_record import HeldStudy
from receiving_site.holds_queue import Choice, Decision, Place
from receiving_site.preview import sex_word
from receiving_site.settings import ReceiverSettings
from site_agent.console import render, user_of
from site_agent.console.appkeys import AUDIT, address_of
from site_agent.credential import read_credential
from site_agent.dicom_text import date, person_name
from site_agent.errors import AgentError

SETTINGS = web.AppKey("receiver_holds_settings", ReceiverSettings)
REVIEW_FOLDER = "review-copies"  # under the state folder: the default for "save to folder"

routes = web.RouteTableDef()


def setup(app: web.Application, settings: ReceiverSettings) -> None:
    app[SETTINGS] = settings


@dataclass(frozen=True)
class Option:
    """A choice as the page offers it: a heading, what it does, the confirmation to tick."""

    choice: Choice
    title: str
    does: str
    confirm: str
    button: str


def _options(held: HeldStudy) -> list[Option]:
    mrn = held.local_patient_id or held.ours.patient_id
    words = {
        Choice.TRY_AGAIN: Option(
            Choice.TRY_AGAIN,
            "Try the PACS again",
            "Once the PACS administrators have fixed what stopped it, store the study in the "
            f"PACS {held.pacs} as it was meant to be.",
            "The PACS administrators say it is fixed.",
            "Try again",
        ),
        Choice.CONFIRM_LOCAL_RECORD: Option(
            Choice.CONFIRM_LOCAL_RECORD,
            "It is the same patient: file under the PACS's record",
            f"File the images under patient ID {mrn}, taking the PACS's name and birth date "
            "(for example when the PACS has the patient under a trauma alias).",
            "I checked the patient in front of me: the PACS's record is this patient.",
            "File under the PACS's record",
        ),
        Choice.NEW_LOCAL_PATIENT: Option(
            Choice.NEW_LOCAL_PATIENT,
            "The record number was just given to this patient",
            "File the images under this new record number, keeping the name and birth date "
            "the ER sent.",
            "This record number was just registered for this patient.",
            "File under the new record",
        ),
        Choice.OTHER_RECORD: Option(
            Choice.OTHER_RECORD,
            "File under this patient's own record number",
            "The images are filed under the number you give; the PACS's name and birth date "
            "for it must match the ER's patient, or the study is held again.",
            "This is the patient's own record number here.",
            "File under this record",
        ),
        Choice.SAVE_TO_FOLDER: Option(
            Choice.SAVE_TO_FOLDER,
            "Save the images in a folder to look at first",
            "Nothing goes to the PACS, and the study stays in this queue for the PACS.",
            "Save a review copy; nothing goes to the PACS.",
            "Save to folder",
        ),
        Choice.STORE_ANYWAY: Option(
            Choice.STORE_ANYWAY,
            "Store in the PACS as they are",
            "Only after a person has reviewed this and decided the images belong in the PACS "
            "as they are: they are stored without this check.",
            "A person reviewed this hold and decided the images belong in the PACS as they are.",
            "Store anyway",
        ),
        Choice.DISCARD: Option(
            Choice.DISCARD,
            "Discard the images",
            "Removes the images and the key from this machine. The transfer cannot be "
            "imported from here afterwards; the ER still has the study.",
            "Remove these images from this machine.",
            "Discard",
        ),
    }
    return [words[choice] for choice in holds_queue.choices(held)]


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


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
        "when": _when(held.at),
        "sides": _sides(held),
        "patient": person_name(held.ours.name),
    }


def _place(settings: ReceiverSettings) -> Place:
    credential_file = settings.relay.credential_file
    return Place(settings.state.folder, read_credential(credential_file))


@routes.get("/holds")
async def queue(request: web.Request) -> web.Response:
    state_dir = request.app[SETTINGS].state.folder
    found = hold_record.held_studies(state_dir)
    return render(request, "holds.html", held=[_view(h) for h in found])


def _held_or_404(request: web.Request) -> HeldStudy:
    transfer_id = request.match_info["transfer_id"]
    held = hold_record.load(request.app[SETTINGS].state.folder, transfer_id)
    if held is None:
        raise web.HTTPNotFound(text=errors.HoldNotFound().message)
    return held


def _decide_page(
    request: web.Request, held: HeldStudy, *, problem: str = "", status: int = 200
) -> web.Response:
    settings = request.app[SETTINGS]
    return render(
        request,
        "holds_decide.html",
        status=status,
        options=_options(held),
        problem=problem,
        review_folder=str(Path(settings.state.folder) / REVIEW_FOLDER),
        local_issuer=held.local_issuer or settings.identity.local_issuer,
        **_view(held),
    )


@routes.get("/holds/{transfer_id}")
async def decide_page(request: web.Request) -> web.Response:
    return _decide_page(request, _held_or_404(request))


def _decision(choice: Choice, form: Any) -> Decision:
    folder = str(form.get("folder", "")).strip()
    return Decision(
        choice,
        local_patient_id=str(form.get("local_patient_id", "")),
        local_issuer=str(form.get("local_issuer", "")),
        folder=Path(folder) if folder else None,
    )


@routes.post("/holds/{transfer_id}")
async def decide(request: web.Request) -> web.Response:
    held = _held_or_404(request)
    form = await request.post()
    try:
        choice = Choice(str(form.get("choice", "")))
    except ValueError:
        return _decide_page(request, held, problem=errors.HoldChoiceRefused().message, status=400)
    if form.get("confirmed") != "yes":
        problem = "Tick the box to confirm your choice first. Nothing was done."
        return _decide_page(request, held, problem=problem, status=400)
    settings = request.app[SETTINGS]
    try:
        decided = await holds_queue.decide(
            _place(settings),
            held.transfer_id,
            _decision(choice, form),
            audit=request.app[AUDIT],
            who=user_of(request),
            where=address_of(request),
        )
    except errors.HoldNotFound as e:
        return render(request, "holds_done.html", status=409, ok=False, sentence=e.message)
    except errors.ReceivingError as e:
        again = hold_record.load(settings.state.folder, held.transfer_id)
        if again is None:
            return render(request, "holds_done.html", status=409, ok=False, sentence=e.message)
        return _decide_page(request, again, problem=e.message, status=409)
    except AgentError as e:
        return _decide_page(request, held, problem=e.detail, status=503)
    return render(request, "holds_done.html", ok=True, sentence=_done(decided))


def _done(decided: holds_queue.Decided) -> str:
    result = decided.result
    patient = person_name(decided.held.ours.name)
    if result is None:
        return f"The images of {patient} were removed from this machine."
    if result.review_command:
        return (
            f"Saved {result.instances} images of {patient} for review in {result.destination}. "
            "Nothing went to the PACS; the study stays in the holds queue."
        )
    filed = ""
    if result.filed_under is not None:
        local = result.filed_under
        filed = f" under patient ID {local.patient_id}, as {person_name(local.patient_name)}"
    return f"Stored {result.instances} images of {patient} in the PACS{filed}."


@routes.get("/holds-style.css")
async def style(request: web.Request) -> web.Response:
    text = resources.files(__package__).joinpath("holds.css").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="text/css")
