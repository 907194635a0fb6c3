"""A relay that answers with control characters (a hostile relay, or one in the middle): the
sentence it sends is what the sites print, so its escapes reach staff's terminal only as
visible text (`site_agent.terminal_text`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from site_agent.client import RelayClient
from site_agent.errors import RelayRefused
from transfer_codes import wire


@asynccontextmanager
async def hostile_relay() -> AsyncIterator[str]:
    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "type": "urn:trauma-relay:problem:forbidden",
                "detail": "Refused.\x1b[2J\x1b]0;owned\x07\u202e\r\nSite: fake line",
            },
            status=403,
        )

    app = web.Application()
    app.router.add_get(wire.SITES, refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_relay_sentence_with_escapes_is_shown_escaped() -> None:
    async with hostile_relay() as url, RelayClient(url, "credential") as client:
        with pytest.raises(RelayRefused) as refused:
            await client.directory()
    said = str(refused.value)
    assert "Refused.\\x1b[2J\\x1b]0;owned\\x07\\u202e\\x0d\\x0aSite: fake line" in said
    assert not any(c in said for c in "\x1b\x07\u202e\r\n")
