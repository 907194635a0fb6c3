"""The trauma console: the receiving agent's pages on the shared console framework
(`site_agent.console`). For now its home page only says what comes next; entering a code, the
preview, identity and the holds queue join `routes` here."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from receiving_site.settings import ReceiverSettings
from site_agent.console import AgentConsole, make_app, render
from site_agent.local_state import site_folder

TITLE = "Trauma console"
routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "receiver_home.html")


def make_console(
    settings: ReceiverSettings, *, clock: Callable[[], float] = time.time
) -> web.Application:
    agent = AgentConsole(
        title=TITLE,
        folder=site_folder(settings.state.folder, "receiving"),
        templates="receiving_site.console",
        routes=routes,
        add_user="trauma-relay receiver user add NAME",
    )
    return make_app(agent, settings.console, clock=clock)
