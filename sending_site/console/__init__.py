"""The ER console: the sending agent's pages on the shared console framework
(`site_agent.console`), served by `trauma-relay sender` (with the DICOM inbox) or `trauma-relay
sender console` (the pages alone).

- `studies`: recent studies from the inbox index, a study's completeness, sending it;
- `pacs_pages`: finding a study in the hospital PACS and fetching it;
- `transfer_pages`: a transfer's progress, authorization, code, sheet and status; re-issue,
  break-glass, revoke.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from sending_site.agent import lock
from sending_site.agent.jobs import PushJobs, PushSetup, jobs_folder, lifetime
from sending_site.console import pacs_pages, studies, transfer_pages
from sending_site.console.appkeys import FETCHES, JOBS, SETTINGS
from sending_site.console.fetches import Fetches
from sending_site.errors import SendingError
from sending_site.settings import SenderSettings, inbox_settings
from site_agent.console import AgentPages, Link
from site_agent.console.appkeys import RELAY_CREDENTIAL

STATIC = Path(__file__).with_name("static")


def setup(app: web.Application, settings: SenderSettings) -> None:
    """The agent's settings and push jobs (started again where a stop left them, once this
    process holds the state folder's lock), and its script for live progress."""
    app[SETTINGS] = settings
    fetches = Fetches()  # the inbox, when it runs in this process, keeps into it
    jobs = PushJobs(
        jobs_folder(settings.state.folder),
        PushSetup(
            relay=settings.relay.url,
            relay_credential=app[RELAY_CREDENTIAL],
            state_dir=settings.state.folder,
            inbox=inbox_settings(settings),
            keeper=lambda: fetches.keeper,
        ),
    )
    app[JOBS] = jobs
    app[FETCHES] = fetches
    # One process runs a state folder's jobs; the lock is taken before any job resumes.
    app.cleanup_ctx.append(lock.holding(settings.state.folder))
    app.cleanup_ctx.append(lifetime(jobs))
    app.router.add_static("/er/", STATIC)


PAGES = AgentPages(
    title="ER console",
    templates=__name__,
    routes=(*studies.routes, *pacs_pages.routes, *transfer_pages.routes),
    navigation=(
        Link("Recent studies", "/"),
        Link("Find in PACS", "/pacs"),
        Link("Transfers", "/transfers"),
    ),
    errors=((SendingError, 400),),
    sentence=lambda e: e.for_console if isinstance(e, SendingError) else str(e),
    setup=setup,
)
