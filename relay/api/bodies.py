"""Strict parsing of request bodies: clear errors, nothing changed on bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from relay import errors
from relay.appkeys import CONFIG
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64decode_text

MAX_JSON_BODY = 64 * 1024


async def next_block(request: web.Request, most: int) -> bytes:
    """Up to `most` bytes of the body as they arrive (b"" at its end), or `ClientTooSlow` when
    nothing arrives for the configured idle time: a client that stalls mid-body does not hold
    a connection, an object's write lock and its buffers for ever."""
    idle = request.app[CONFIG].body_idle_timeout
    try:
        async with asyncio.timeout(idle):
            return await request.content.read(most)
    except TimeoutError:
        raise errors.ClientTooSlow(idle) from None


async def blocks(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """The request body in blocks of at most `size` bytes, each within the idle time."""
    while block := await next_block(request, size):
        yield block


async def read_limited(
    request: web.Request, limit: int, too_large: str | errors.RelayError
) -> bytes:
    """The whole request body, refused past `limit` bytes with `too_large` (a `BadRequest` if
    given as text). (A single `content.read(n)` returns only what has arrived so far, which may
    be part of the body.)"""
    refusal = errors.BadRequest(too_large) if isinstance(too_large, str) else too_large
    if request.content_length is not None and request.content_length > limit:
        raise refusal
    parts: list[bytes] = []
    size = 0
    while block := await next_block(request, limit + 1 - size):
        parts.append(block)
        size += len(block)
        if size > limit:
            raise refusal
    return b"".join(parts)


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await read_limited(request, MAX_JSON_BODY, "The request body is too large.")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise errors.BadRequest("The request body is not valid JSON.") from e
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    try:  # JSON may spell a lone surrogate (\ud800), which is not text and cannot be stored
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise errors.BadRequest("The request body holds text that is not valid Unicode.") from e
    return body


def text(body: dict[str, Any], name: str, *, max_len: int = 200, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise errors.BadRequest(f"{name!r} must be a non-empty string of at most {max_len}.")
    return value


def b64(body: dict[str, Any], name: str, *, max_len: int = 4096, min_len: int = 1) -> bytes:
    value = body.get(name)
    if not isinstance(value, str):
        raise errors.BadRequest(f"{name!r} must be base64 text.")
    try:
        data = b64decode_text(value)
    except ValueError as e:  # not base64, or not ASCII
        raise errors.BadRequest(f"{name!r} must be base64 text.") from e
    if not min_len <= len(data) <= max_len:
        raise errors.BadRequest(f"{name!r} has the wrong length.")
    return data


def integer(body: dict[str, Any], name: str, *, low: int = 0, high: int = 2**62) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise errors.BadRequest(f"{name!r} must be an integer from {low} to {high}.")
    return value


def indices(body: dict[str, Any], name: str, *, most: int) -> list[int]:
    """A non-empty list of at most `most` distinct object indices."""
    value = body.get(name)
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= most
        or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 10**9 for i in value)
        or len(set(value)) != len(value)
    ):
        raise errors.BadRequest(
            f"{name!r} must list from 1 to {most} different object indices (integers from 0)."
        )
    return list(value)


def receipt_details(body: dict[str, Any], instances: int) -> dict[str, object]:
    """A receipt's optional details (counts and a flag, never PHI): `decompressed`, how many of
    the `instances` were decompressed for the PACS, and `reconciled`, whether the study was
    filed under the trauma center's own patient record. Absent ones stay absent (an older
    receiving agent does not send them); present ones must be exactly that."""
    details: dict[str, object] = {}
    if "decompressed" in body:
        details["decompressed"] = integer(body, "decompressed", high=instances)
    if "reconciled" in body:
        if not isinstance(body["reconciled"], bool):
            raise errors.BadRequest("'reconciled' must be true or false.")
        details["reconciled"] = body["reconciled"]
    return details


def transfer_id(request: web.Request) -> str:
    value = request.match_info["transfer_id"]
    if not is_transfer_id(value):
        raise errors.NotFound()
    return value


def object_index(request: web.Request) -> int:
    value = request.match_info["index"]
    if not is_small_number(value):
        raise errors.BadRequest("The object index must be a small non-negative integer.")
    return int(value)


def is_small_number(text: str, max_digits: int = 9) -> bool:
    """ASCII digits only: `str.isdigit` also accepts "²" and other digits `int` refuses."""
    return text.isascii() and text.isdigit() and len(text) <= max_digits
