"""A console route that takes a file raises the body limit for itself only (`takes_uploads`),
before the CSRF check reads its form; every other route keeps the console's 1 MiB, and a body
over a route's limit gets the calm "too large" page (real HTTP, in-process server)."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from console_harness import running_test_console
from test_console_app import browser_like, signed_in

from site_agent.console import AgentPages, render
from site_agent.console.app import MAX_BODY
from site_agent.console.uploads import Handler, takes_uploads

pytestmark = pytest.mark.asyncio

LIMIT = 3 * MAX_BODY


def _pages() -> AgentPages:
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(request: web.Request) -> web.Response:
        return render(request, "sender_home.html")

    def size_of() -> Handler:
        async def handler(request: web.Request) -> web.Response:
            upload = (await request.post()).get("file")
            assert isinstance(upload, web.FileField)
            with upload.file:
                return web.Response(text=str(len(upload.file.read())))

        return handler

    routes.post("/plain")(size_of())
    routes.post("/upload")(takes_uploads(LIMIT)(size_of()))
    return AgentPages(title="Test console", templates="sending_site.console", routes=routes)


def _form(token: str, size: int) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field(
        "file", io.BytesIO(b"x" * size), filename="report.pdf", content_type="application/pdf"
    )
    return form


async def test_only_the_upload_route_takes_large_bodies(tmp_path: Path) -> None:
    async with running_test_console(tmp_path, _pages()) as console, browser_like() as client:
        token = await signed_in(client, console)
        for path, size, status in [
            ("/plain", 1000, 200),
            ("/plain", 2 * MAX_BODY, 413),
            ("/upload", 2 * MAX_BODY, 200),
            ("/upload", LIMIT + 1, 413),
        ]:
            async with client.post(f"{console.url}{path}", data=_form(token, size)) as r:
                page = await r.text()
            assert r.status == status, (path, size, page)
            if status == 200:
                assert page == str(size)
            else:
                assert "larger than this console accepts" in page
