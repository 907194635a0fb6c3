"""The ER console: the sending agent's pages on the shared console framework
(`site_agent.console`), served by `trauma-relay sender console`. For now its home page only
says what comes next; the recent studies, the PACS search and the transfer pages join `routes`
here."""

from __future__ import annotations

from aiohttp import web

from site_agent.console import AgentPages, render

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "sender_home.html")


PAGES = AgentPages(title="ER console", templates=__name__, routes=routes)
