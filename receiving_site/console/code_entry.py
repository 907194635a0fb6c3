"""The page staff land on: one field for the code, typed or from a USB barcode/QR scanner that
types into it (the transfer sheet's QR, the patient's phone), and the imports of this agent,
unfinished ones first (after a restart: those that continue, and those to open again).

The code is parsed here, with the command line's `parse_secret`, before anything is sent: a
typing mistake is told on the page and never costs an attempt at the relay. The page's script
(`code_check.js`) tells the same as it is typed; the server does not rely on it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from receiving_site import errors
from receiving_site.console.appkeys import IMPORTS, UNREADY
from receiving_site.console.errors import MaybeOpenedByItsQr, StillRedeeming
from receiving_site.console.imports import Import, Stage
from receiving_site.preview import person_name
from receiving_site.redeem import parse_secret
from site_agent.console import render, user_of
from site_agent.console.appkeys import address_of
from site_agent.console.page_views import list_viewed
from transfer_codes.codes import looks_like_code
from transfer_codes.errors import TransferCodeError

routes = web.RouteTableDef()

UNLOCK_WAIT = 120.0  # seconds the form waits for the relay's answer before showing the list
FIELD = "code"
LISTED = (Stage.STARTING, Stage.OPENING, Stage.PREVIEW, Stage.IMPORTING, Stage.FAILED)


def _listed(request: web.Request) -> tuple[list[Import], list[Import]]:
    """(unfinished, done) imports, newest last."""
    jobs = [j for j in request.app[IMPORTS].all() if j.transfer_id]
    unfinished = [j for j in jobs if j.stage in (*LISTED, Stage.HELD, Stage.UNFINISHED)]
    return unfinished, [j for j in jobs if j.stage is Stage.DONE]


def _qr_import_listed(request: web.Request) -> bool:
    """Whether the list of imports has one opened by its QR (not by a typed code): that
    transfer's code, typed afterwards, is refused by the relay like any other spent code. Not
    one discarded in the holds queue, which the list leaves out."""
    unfinished, done = _listed(request)
    return any(not j.code for j in (*unfinished, *done))


async def _home(
    request: web.Request, *, problem: str = "", typed: str = "", status: int = 200
) -> web.Response:
    """The page with the code's field and the list of imports, each naming its patient: every
    time it is shown to a person (opened, or answering their code) it is audited as a view of
    that list (`page_views.list_viewed`)."""
    unfinished, done = _listed(request)
    await list_viewed(request, "imports", len(unfinished) + len(done))
    return render(
        request,
        "receiver_home.html",
        status=status,
        problem=problem,
        typed=typed,
        unready=request.app[UNREADY],
        unfinished=unfinished,
        done=done,
        name=person_name,
    )


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return await _home(request)


def _given_back(text: str) -> str:
    """What the field shows again with a problem: the code as typed, so that it need not be
    typed again (only in the page the POST answers: never in a URL or a log); nothing for a
    scanned QR or link (its text is the whole key; scanning again is as quick). Nor for another
    web address (`WebAddressGiven`): it may be the family's link mangled by a scanner (a '#'
    typed as another character), the token and key still in it. Nor for text too long to be a
    code (`ScannedGarbled`): a QR or a link whose ':' the scanner's keyboard layout garbled."""
    return "" if ":" in text or not looks_like_code(text) else text.strip()


@routes.post("/redeem")
async def redeem_code(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    text = str(form.get(FIELD, ""))
    typed = _given_back(text)
    unready: list[str] = request.app[UNREADY]
    if unready:
        return await _home(request, problem=" ".join(unready), typed=typed, status=503)
    try:
        secret = parse_secret(text)
    except (TransferCodeError, errors.ReceivingError) as e:
        return await _home(request, problem=str(e), typed=typed, status=400)
    imports = request.app[IMPORTS]
    known = imports.open_for(secret)
    if known is not None and known.transfer_id:
        # Open here already (the QR of a transfer its code opened): nothing is sent or spent.
        # Its page, opened next, is audited as a view of the study (`import_pages.viewed`).
        raise web.HTTPSeeOther(f"/imports/{known.transfer_id}")
    user = user_of(request)
    job = imports.start(secret, text.strip(), user, address_of(request))
    if job.discarded:  # its page says so (and audits the view): not redeemed again
        raise web.HTTPSeeOther(f"/imports/{job.transfer_id}")
    try:
        await asyncio.wait_for(job.unlocked.wait(), UNLOCK_WAIT)
    except TimeoutError:
        waiting = StillRedeeming()
        return await _home(request, problem=waiting.detail, typed=typed, status=waiting.status)
    # The redemption is audited by the import itself (`Imports.start`), once, whoever waits;
    # written before the page answers.
    if job.recorded is not None:
        await asyncio.shield(job.recorded)
    if not job.transfer_id:
        problem = job.problem
        if job.not_accepted and _qr_import_listed(request):
            problem = f"{problem} {MaybeOpenedByItsQr().detail}"
        return await _home(request, problem=problem, typed=typed, status=400)
    raise web.HTTPSeeOther(f"/imports/{job.transfer_id}")
