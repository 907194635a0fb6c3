"""Creating a transfer (`POST /api/v1/transfers`) and addressing one by its id: hostile
bodies and hostile transfer ids get a clear 4xx and change nothing."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from relay_harness import RECEIVER
from yarl import URL

from relay_api.plumbing import (
    Ctx,
    assert_clear_refusal,
    create_transfer,
    nothing_changes,
    upload,
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        b'{"recipient": 5}',
        b'{"recipient": "county-trauma", "expires_in": 1e400}',
        b'{"recipient": "county-trauma", "expires_in": "3600"}',
        b'{"recipient": "county-trauma", "expires_in": 10}',
        b'{"recipient": "county-trauma", "expires_in": true}',
        b'{"recipient": "county-trauma", "expires_in": 1' + b"0" * 5000 + b"}",
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
    ids=[
        "syntax",
        "array",
        "string",
        "not-utf8",
        "wrong-type",
        "infinite",
        "numeric-string",
        "too-short",
        "boolean",
        "huge-integer",
        "deep-array",
        "deep-object",
    ],
)
async def test_malformed_json_is_a_clear_400(ctx: Ctx, body: bytes) -> None:
    with nothing_changes(ctx):
        r = await ctx.call(
            "POST",
            "/api/v1/transfers",
            cred=ctx.er,
            data=body,
            headers={"Content-Type": "application/json"},
        )
    assert_clear_refusal(r, 400)


@pytest.mark.asyncio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_json_body_is_refused(ctx: Ctx, chunked: bool) -> None:
    body = json.dumps({"recipient": RECEIVER, "padding": "x" * (4 * 1024 * 1024)}).encode()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    with nothing_changes(ctx):
        r = await ctx.call(
            "POST",
            "/api/v1/transfers",
            cred=ctx.er,
            data=stream() if chunked else io.BytesIO(body),
            headers={"Content-Type": "application/json"},
        )
    assert_clear_refusal(r, 400, 413)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "transfer_id",
    [
        "..%2F..",
        "..%2F..%2Fdecoy.key",
        "%2E%2E%2F%2E%2E%2Frelay.sqlite3",
        "..%5C..%5Cdecoy.key",
        "%2Fetc%2Fpasswd",
        "..",
        "%00",
        "0123456789abcdefghjkmnpq",  # a transfer id in lower case is not one
        "0123456789ABCDEFGHJKMNPQR",
        "0123456789ABCDEFGHJKMNPU",
    ],
)
async def test_path_traversal_in_transfer_ids_is_refused(ctx: Ctx, transfer_id: str) -> None:
    sent = await create_transfer(ctx)
    await upload(ctx, sent, 0, b"slice")
    base = f"{ctx.relay.url}/api/v1/transfers/{transfer_id}"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", "/objects/0", {"data": b"x", "headers": {"Upload-Offset": "0"}}),
        ("POST", "/objects/0/complete", {"json": {"size": 1, "sha256": "0" * 64}}),
        ("GET", "/objects", {}),
        ("GET", "/objects/0", {}),
        ("PUT", "/manifest/0", {"data": b"record"}),
        ("GET", "/manifest", {}),
        ("GET", "", {}),
        ("POST", "/revoke", {}),
    ]
    with nothing_changes(ctx):
        for method, suffix, kwargs in attempts:
            for cred in (ctx.er, ctx.tc):
                r = await ctx.call(method, URL(base + suffix, encoded=True), cred=cred, **kwargs)
                assert_clear_refusal(r, 400, 403, 404)
