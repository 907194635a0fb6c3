"""The trauma console: the receiving agent's pages on the shared console framework
(`site_agent.console`), served by `trauma-relay receiver` (or `receiver console`).

Staff enter or scan the code (`code_entry`), check the preview with its thumbnails, give the
local record number (picked from the Modality Worklist, `import_worklist`, or typed) and
acknowledge each difference, and watch the import (`import_pages`).
Every step runs the command line's own functions (`receiving_site.redeem`: parse, unlock,
stage and verify, identity check, reconcile, store, receipt), one redemption per import
(`imports`). After a restart, unfinished imports are listed, and those a person had confirmed
continue by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from aiohttp import web

from receiving_site import stow
from receiving_site.console import code_entry, holds, import_pages, import_worklist
from receiving_site.console.appkeys import (
    CHECKS,
    CONFIRMING,
    IMPORTS,
    SEARCHES,
    THUMBNAILS,
    UNREADY,
    WORKLIST,
)
from receiving_site.console.errors import ContinueFromTheList, NoPacs
from receiving_site.console.imports import Imports
from receiving_site.console.record_checks import RecordChecks
from receiving_site.console.worklist_search import Worklist
from receiving_site.errors import ReceivingError
from receiving_site.pacs import PacsAddress
from receiving_site.redeem import RedeemRequest
from receiving_site.settings import ReceiverSettings
from site_agent.console import AgentPages, Link
from site_agent.console.appkeys import AUDIT, RELAY_CREDENTIAL
from site_agent.credential import AgentCredential
from site_agent.errors import AgentError

STATIC = Path(__file__).with_name("static")
THUMBNAILS_AT_ONCE = 2  # renderings on worker threads (the machine also stores images)

routes = web.RouteTableDef()
routes.static("/trauma/static", STATIC)


def _request(
    settings: ReceiverSettings, relay_credential: AgentCredential
) -> tuple[RedeemRequest, list[str]]:
    """What every import is redeemed with, from the settings; and why none can be, if so."""
    unready = []
    try:
        credential = relay_credential.read()
    except AgentError as e:
        credential = ""
        unready.append(e.for_console)
    address = None
    if settings.pacs.host:
        address = PacsAddress(
            settings.pacs.ae_title,
            settings.pacs.host,
            settings.pacs.port,
            settings.pacs.calling_ae_title,
        )
    else:
        unready.append(NoPacs().detail)
    request = RedeemRequest(
        relay=settings.relay.url,
        credential=credential,
        state_dir=Path(settings.state.folder),
        pacs=address,
        local_issuer=settings.identity.local_issuer,
        associations=settings.pacs.associations,
        as_they_arrive=settings.pacs.as_they_arrive,
        stow=stow.from_settings(settings.stow),  # STOW-RS in, C-FIND to the PACS for checks
        assume_yes=True,
        how_to_continue=ContinueFromTheList().detail,
    )
    return request, unready


async def _imports(settings: ReceiverSettings, app: web.Application) -> AsyncIterator[None]:
    """The imports live as long as the console; unfinished ones are picked up at the start."""
    imports = app[IMPORTS]
    if not app[UNREADY]:
        imports.resume_unfinished()
    yield
    await imports.stop()


def setup(app: web.Application, settings: ReceiverSettings) -> None:
    request, unready = _request(settings, app[RELAY_CREDENTIAL])
    app[IMPORTS] = Imports(request, app[AUDIT])
    app[UNREADY] = unready
    app[CHECKS] = RecordChecks()
    app[CONFIRMING] = asyncio.Lock()
    app[WORKLIST] = Worklist(settings.worklist, settings.pacs.calling_ae_title)
    app[SEARCHES] = {}
    app[THUMBNAILS] = asyncio.Semaphore(THUMBNAILS_AT_ONCE)
    app.cleanup_ctx.append(partial(_imports, settings))
    holds.setup(app, settings)


PAGES = AgentPages(
    title="Trauma console",
    templates=__name__,
    routes=[
        *routes,
        *code_entry.routes,
        *import_pages.routes,
        *import_worklist.routes,
        *holds.routes,
    ],
    navigation=(Link("Enter a code", "/"), Link("Holds", "/holds")),
    errors=((ReceivingError, 400),),
    setup=setup,
)
