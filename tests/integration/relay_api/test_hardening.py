"""Requests a careful client never sends still get a clear answer, never a 500: a lone surrogate
in JSON text, a client that goes away mid-body. And no answer may be cached."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from relay_harness import RECEIVER, FakeClock, running_relay

from relay_api.plumbing import (
    Ctx,
    assert_clear_refusal,
    create_transfer,
    nothing_changes,
    upload,
)
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


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("public_url", "strict"),
    [("https://relay.example.org", "max-age=31536000"), (None, None)],
)
async def test_browsers_are_told_to_keep_to_https_only_when_the_relay_is_reached_over_it(
    tmp_path: Path, public_url: str | None, strict: str | None
) -> None:
    """Behind a TLS proxy (an https:// public address) every answer carries HSTS, so a phone
    that opened the page once never sends a later http:// link in the clear; a relay reached
    over plain HTTP (tests, a pilot on loopback) sends none."""
    async with (
        running_relay(tmp_path / "relay", public_url=public_url) as relay,
        aiohttp.ClientSession() as http,
    ):
        for path in (wire.HEALTH, "/authorize", wire.transfer("nope")):
            async with http.get(relay.url + path) as answer:
                assert answer.headers.get("Strict-Transport-Security") == strict, path


@pytest.mark.asyncio
async def test_what_the_relay_writes_only_its_user_can_read(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the common umask: new files readable by everyone
    try:
        async with (
            running_relay(tmp_path / "relay", clock=FakeClock()) as relay,
            aiohttp.ClientSession() as http,
        ):
            ctx = Ctx(relay, FakeClock(), http)
            sent = await create_transfer(ctx)
            await upload(ctx, sent, 0, b"sealed bytes of one image")
            written = [p for p in relay.data_dir.rglob("*") if p != relay.data_dir]
            modes = {str(p.relative_to(relay.data_dir)): p.stat().st_mode & 0o777 for p in written}
            assert any("objects/" in name for name in modes), modes  # an object was written
            assert {name: oct(m) for name, m in modes.items() if m & 0o077} == {}
    finally:
        os.umask(previous)
