"""How the sites' relay client treats the transport: a redirect is never followed (the site's
credential goes to the relay's own address only); plain http:// to another machine is refused
before any connection; a relay whose certificate no trusted authority signed is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from site_agent.client import RelayClient
from site_agent.errors import CleartextRelay, RelayRedirected

CREDENTIAL = "st-mary-er-credential-value"


@pytest_asyncio.fixture
async def redirecting() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server whose every answer redirects to its own /elsewhere, which records the headers
    it is sent."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"status": "ok"})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    app = web.Application()
    app.router.add_route("*", "/elsewhere", elsewhere)
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(redirecting: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = redirecting
    async with RelayClient(url, CREDENTIAL) as client:
        with pytest.raises(RelayRedirected, match="does not follow it with this site's"):
            await client.health()
        with pytest.raises(RelayRedirected):
            await client.status("T" * 24)
    assert seen == []  # nothing, and no credential, reached the redirect's target


@pytest.mark.parametrize(
    "url", ["http://relay.example", "http://10.0.0.5:8750", "http://[2001:db8::1]:8750"]
)
def test_plain_http_to_another_machine_is_refused(url: str) -> None:
    with pytest.raises(CleartextRelay, match="plain http:// to another machine"):
        RelayClient(url, CREDENTIAL)


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"])
async def test_plain_http_on_this_machine_is_allowed(url: str) -> None:
    client = RelayClient(url, CREDENTIAL)
    await client.close()
