"""A small typed client for the relay's API, used by the sending and receiving site agents.

Secrets travel only in headers and bodies, never in a URL. Problem documents from the relay
become `RelayRefused` with the relay's own sentence; network failures become `RelayUnreachable`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from relay.errors import RelayError

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=120)


class RelayUnreachable(RelayError):
    """The relay could not be reached. Check the address and the network, then try again."""

    code = "unreachable"


class RelayRefused(RelayError):
    """The relay refused the request."""

    def __init__(self, status: int, code: str, detail: str, extra: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.extra = extra


@dataclass(frozen=True)
class Holdings:
    offsets: dict[int, int]
    complete: set[int]
    manifest_records: int
    manifest_closed: bool


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class RelayClient:
    def __init__(self, base_url: str, credential: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=TIMEOUT)

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                json=json,
                data=data,
                headers=headers,
                params=params,
            ) as response:
                if response.status >= 400:
                    await _raise_problem(response)
                if response.content_type == "application/json":
                    return await response.json()
                return await response.read()
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
            raise RelayUnreachable(
                f"The relay at {self.base_url} could not be reached ({type(e).__name__}). "
                "Check the address and the network, then run the same command again."
            ) from e

    async def stream(self, path: str, start: int = 0) -> AsyncIterator[bytes]:
        headers = {"Range": f"bytes={start}-"} if start else None
        try:
            async with self._session.get(self.base_url + path, headers=headers) as response:
                if response.status >= 400:
                    await _raise_problem(response)
                async for block in response.content.iter_chunked(256 * 1024):
                    yield block
        # A body cut short (ClientPayloadError) is a lost connection too: the caller resumes.
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
            raise RelayUnreachable(
                f"The connection to the relay at {self.base_url} was lost ({type(e).__name__})."
            ) from e

    # -- endpoints -----------------------------------------------------------------------

    async def health(self) -> None:
        await self.request("GET", "/healthz")

    async def directory(self) -> list[dict[str, str]]:
        body = await self.request("GET", "/api/v1/sites")
        return list(body["sites"])

    async def holdings(self, transfer_id: str) -> Holdings:
        body = await self.request("GET", f"/api/v1/transfers/{transfer_id}/objects")
        return Holdings(
            offsets={int(o["index"]): int(o["offset"]) for o in body["objects"]},
            complete={int(o["index"]) for o in body["objects"] if o["complete"]},
            manifest_records=int(body["manifest_records"]),
            manifest_closed=bool(body["manifest_closed"]),
        )

    async def status(self, transfer_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/transfers/{transfer_id}"))


async def _raise_problem(response: aiohttp.ClientResponse) -> None:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or f"HTTP {response.status} {response.reason}")
    raise RelayRefused(response.status, str(body.get("type", "")).rsplit(":", 1)[-1], detail, body)


CREDENTIAL_ENV = "TRAUMA_RELAY_CREDENTIAL"


def read_credential(path: str | None) -> str | None:
    """The site credential from `--credential-file` or the environment (never from argv)."""
    import os

    if path:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
        return value or None
    value = os.environ.get(CREDENTIAL_ENV, "").strip()
    return value or None
