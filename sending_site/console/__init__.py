"""The ER console: the sending agent's pages on the shared console framework
(`site_agent.console`). For now its home page only says what comes next; the recent studies,
the PACS search and the transfer pages join `routes` here."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from sending_site.settings import SenderSettings
from site_agent.console import AgentConsole, make_app, render
from site_agent.local_state import site_folder

TITLE = "ER console"
routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "sender_home.html")


def make_console(
    settings: SenderSettings, *, clock: Callable[[], float] = time.time
) -> web.Application:
    agent = AgentConsole(
        title=TITLE,
        folder=site_folder(settings.state.folder, "sending"),
        templates="sending_site.console",
        routes=routes,
        add_user="trauma-relay sender user add NAME",
    )
    return make_app(agent, settings.console, clock=clock)
