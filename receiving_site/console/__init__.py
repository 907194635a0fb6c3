"""The trauma console: the receiving agent's pages on the shared console framework
(`site_agent.console`), served by `trauma-relay receiver console`. For now its home page only
says what comes next; entering a code, the preview, identity and the holds queue join `routes`
here."""

from __future__ import annotations

from aiohttp import web

from receiving_site.console import holds
from site_agent.console import AgentPages, Link, render

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "receiver_home.html")


PAGES = AgentPages(
    title="Trauma console",
    templates=__name__,
    routes=[*routes, *holds.routes],
    navigation=(Link("Holds", "/holds"),),
    setup=holds.setup,
)
