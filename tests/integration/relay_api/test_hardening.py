"""Requests a careful client never sends still get a clear answer, never a 500: a lone surrogate
in JSON text, a client that goes away mid-body. And no answer may be cached."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import pytest
from relay_harness import RECEIVER

from relay_api.plumbing import Ctx, assert_clear_refusal, create_transfer, nothing_changes
from transfer_codes import wire


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (wire.TRANSFERS, '{"recipient": "\\ud800"}'),
        (wire.TRANSFERS, '{"recipient": "' + RECEIVER + '", "note": "\\udfff"}'),
        ("/api/v1/authorizations", '{"token": "\\ud83d"}'),
    ],
)
async def test_a_lone_surrogate_is_refused_plainly(ctx: Ctx, path: str, body: str) -> None:
    with nothing_changes(ctx):
        r = await ctx.call(
            "POST", path, cred=ctx.er, data=body, headers={"Content-Type": "application/json"}
        )
    assert_clear_refusal(r, 400)
    assert r.body["detail"] == "The request body holds text that is not valid Unicode."


async def _send_half_and_leave(url: str, credential: str) -> None:
    parts = urlsplit(url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"POST {wire.TRANSFERS} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {credential}\r\nContent-Type: application/json\r\n"
            "Content-Length: 4000\r\n\r\n"
            '{"recipient": "'
        ).encode()
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.asyncio
async def test_a_client_leaving_mid_body_is_no_error(
    ctx: Ctx, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with nothing_changes(ctx):
        await _send_half_and_leave(ctx.relay.url, ctx.er)
        for _ in range(500):  # until the relay has seen the connection go
            if any("client left" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    left = [r for r in caplog.records if "client left" in r.getMessage()]
    assert [r.levelno for r in left] == [logging.INFO]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # and the relay goes on serving
    sent = await create_transfer(ctx)
    assert sent.transfer_id


@pytest.mark.asyncio
async def test_no_answer_may_be_cached(ctx: Ctx) -> None:
    sent = await create_transfer(ctx)
    answers = [
        await ctx.call("GET", wire.HEALTH),
        await ctx.call("GET", wire.transfer(sent.transfer_id), cred=ctx.er),
        await ctx.call("GET", wire.transfer(sent.transfer_id), cred=ctx.tc),
        await ctx.call("GET", wire.transfer("nope")),  # a problem document too
    ]
    assert [a.headers.get("Cache-Control") for a in answers] == ["no-store"] * len(answers)
