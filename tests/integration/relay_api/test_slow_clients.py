"""A client whose request body stops arriving is refused once the body has been idle for
`server.body_idle_timeout_seconds` (408, a problem document): it does not hold its connection,
the object's write lock and the relay's buffers for ever, and nothing past the last
acknowledged byte is kept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from relay_harness import FakeClock, running_relay

from relay_api.plumbing import Ctx, create_transfer, holdings, upload
from transfer_codes import wire
from transfer_codes.sealed import seal_object

IDLE_SECONDS = 0.5


async def _stall_mid_body(url: str, head: str, first: bytes, length: int) -> tuple[int, dict]:
    """Send the request line, headers and `first` of a body declared `length` bytes long, then
    nothing: the relay's answer (status, problem document)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(f"{head}Host: {parts.netloc}\r\nContent-Length: {length}\r\n\r\n".encode())
        writer.write(first)
        await writer.drain()
        async with asyncio.timeout(60):  # the relay answers after IDLE_SECONDS; never hangs
            status_line = await reader.readline()
            headers = await reader.readuntil(b"\r\n\r\n")
            size = next(
                int(line.split(b":", 1)[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(size)
    finally:
        writer.close()
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.asyncio
async def test_an_upload_that_stalls_is_refused_and_keeps_only_what_was_acknowledged(
    tmp_path: Path,
) -> None:
    async with (
        running_relay(
            tmp_path / "relay", clock=FakeClock(), body_idle_timeout=IDLE_SECONDS
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        ctx = Ctx(relay, FakeClock(), http)
        sent = await create_transfer(ctx)
        await upload(ctx, sent, 0, b"a first image, whole")
        sealed = seal_object(sent.data_key, sent.transfer_id, 1, b"x" * 5000)
        head = (
            f"PATCH /api/v1/transfers/{sent.transfer_id}/objects/1 HTTP/1.1\r\n"
            f"Authorization: Bearer {ctx.er}\r\n{wire.UPLOAD_OFFSET}: 0\r\n"
            "Content-Type: application/octet-stream\r\n"
        )
        status, problem = await _stall_mid_body(relay.url, head, sealed[:100], len(sealed))
        assert status == 408
        assert problem["type"] == "urn:trauma-relay:problem:client-too-slow"
        assert "stopped arriving" in problem["detail"]
        objects = {o["index"]: o for o in (await holdings(ctx, sent))["objects"]}
        assert objects[0]["complete"]
        assert objects.get(1, {"offset": 0})["offset"] == 0  # nothing of the stalled body
        # and the same object is then sent whole, from the start
        r = await ctx.call(
            "PATCH",
            f"/api/v1/transfers/{sent.transfer_id}/objects/1",
            cred=ctx.er,
            data=sealed,
            headers={wire.UPLOAD_OFFSET: "0"},
        )
        assert (r.status, r.body["offset"]) == (200, len(sealed)), r


@pytest.mark.asyncio
async def test_a_json_body_that_stalls_is_refused(tmp_path: Path) -> None:
    async with running_relay(
        tmp_path / "relay", clock=FakeClock(), body_idle_timeout=IDLE_SECONDS
    ) as relay:
        head = (
            f"POST {wire.TRANSFERS} HTTP/1.1\r\nAuthorization: Bearer {relay.sender_credential}"
            "\r\nContent-Type: application/json\r\n"
        )
        status, problem = await _stall_mid_body(relay.url, head, b'{"recipient": "', 400)
        assert (status, problem["type"]) == (408, "urn:trauma-relay:problem:client-too-slow")


@pytest.mark.asyncio
async def test_a_body_that_keeps_arriving_is_not_cut_off(ctx: Ctx) -> None:
    """The default idle time is a minute: an ordinary upload is untouched (the limit is on
    silence, not on the whole request)."""
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"y" * 300_000)
    objects = (await holdings(ctx, sent))["objects"]
    assert [o["complete"] for o in objects] == [True]
