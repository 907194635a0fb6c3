"""The sites' typed client for the relay's API: one method per endpoint the agents call.

Secrets travel only in headers and bodies, never in a URL. Problem documents from the relay
become `RelayRefused` with the relay's own sentence and problem code (`wire.Problem`); network
failures, bodies cut short and a proxy's 502, 503 or 504 (the relay's outcome unknown) become
`RelayUnreachable`. Paths, header names and problem codes
come from `transfer_codes.wire`, which the relay's API uses too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from site_agent import tls, unreachable
from site_agent.errors import (
    RelayCertificateRefused,
    RelayRedirected,
    RelayRefused,
    RelayUnreachable,
)
from site_agent.relay_address import relay_address, require_secure
from site_agent.terminal_text import shown
from transfer_codes import wire
from transfer_codes.wire import b64decode_text, b64encode_text

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=120)
DOWNLOAD_BLOCK = 256 * 1024

__all__ = ["Holdings", "RelayClient", "RelayRefused", "RelayUnreachable"]


@dataclass(frozen=True)
class Holdings:
    """What the relay holds of a transfer's upload."""

    offsets: dict[int, int]
    complete: set[int]
    manifest_records: int
    manifest_closed: bool


@dataclass(frozen=True)
class Appended:
    """The relay's answer to a PATCH: its offset for the object, and whether it is complete."""

    offset: int
    complete: bool


class RelayClient:
    def __init__(self, base_url: str, credential: str | None) -> None:
        """Raises `BadRelayAddress` for an address that is not a relay's (`relay_address`),
        `CleartextRelay` for plain http:// to another machine (`require_secure`). The relay's
        certificate is checked against the system's authorities, or only against the private
        one in TRAUMA_RELAY_CA_FILE when that is set (`tls.client_context`)."""
        self.base_url = relay_address(base_url)
        require_secure(self.base_url)
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        connector = aiohttp.TCPConnector(ssl=tls.client_context())
        self._session = aiohttp.ClientSession(headers=headers, timeout=TIMEOUT, connector=connector)

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
        """One request; the decoded JSON answer (or the raw body). The typed methods below are
        what the agents call; this stays public for them and for tests of the API itself."""
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                json=json,
                data=data,
                headers=headers,
                params=params,
                allow_redirects=False,  # the credential goes to the relay's address only
            ) as response:
                _refuse_redirect(response, self.base_url)
                if response.status >= 400:
                    await _raise_problem(response)
                if response.content_type == "application/json":
                    return await response.json()
                return await response.read()
        except aiohttp.ClientConnectorCertificateError as e:
            raise _untrusted(self.base_url, e) from e
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
            why = unreachable.reason(e)
            raise RelayUnreachable(
                f"The relay at {self.base_url} could not be reached: {why}. "
                "Check the address and the network, then run the same command again.",
                why,
                # A console has no command to run again, and its address is a setting.
                console=f"The relay at {self.base_url} could not be reached: {why}. Check "
                "this computer's network; if the relay stays out of reach, call IT.",
                unsent=unreachable.unsent(e),
            ) from e

    async def stream(self, path: str, start: int = 0) -> AsyncIterator[bytes]:
        headers = {"Range": f"bytes={start}-"} if start else None
        try:
            async with self._session.get(
                self.base_url + path, headers=headers, allow_redirects=False
            ) as response:
                _refuse_redirect(response, self.base_url)
                if response.status >= 400:
                    await _raise_problem(response)
                async for block in response.content.iter_chunked(DOWNLOAD_BLOCK):
                    yield block
        except aiohttp.ClientConnectorCertificateError as e:
            raise _untrusted(self.base_url, e) from e
        # A body cut short (ClientPayloadError) is a lost connection too: the caller resumes.
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
            why = unreachable.reason(e)
            raise RelayUnreachable(
                f"The connection to the relay at {self.base_url} was lost: {why}.", why
            ) from e

    # -- any site ----------------------------------------------------------------------------

    async def health(self) -> None:
        """Raise unless the relay is up. A relay whose disk is down to its reserve (503
        `disk-full`) is up: it still serves what it holds, and refuses new transfers and
        uploads itself, saying why."""
        try:
            await self.request("GET", wire.HEALTH)
        except RelayRefused as e:
            if (e.status, e.extra.get("status")) != (503, "disk-full"):
                raise

    async def directory(self) -> list[dict[str, str]]:
        """The trauma centers a transfer can be sent to."""
        return (await self.directory_listing())[0]

    async def directory_listing(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """The trauma centers a transfer can be sent to, and those the relay's operator has
        disabled (none from a relay that does not say)."""
        body = await self.request("GET", wire.SITES)
        return list(body["sites"]), list(body.get("disabled") or [])

    async def status(self, transfer_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", wire.transfer(transfer_id)))

    async def holdings(self, transfer_id: str) -> Holdings:
        body = await self.request("GET", wire.transfer_action(transfer_id, "objects"))
        return Holdings(
            offsets={int(o["index"]): int(o["offset"]) for o in body["objects"]},
            complete={int(o["index"]) for o in body["objects"] if o["complete"]},
            manifest_records=int(body["manifest_records"]),
            manifest_closed=bool(body["manifest_closed"]),
        )

    # -- the sending site --------------------------------------------------------------------

    async def create_transfer(self, recipient: str, expires_in: int | None) -> dict[str, Any]:
        body: dict[str, object] = {"recipient": recipient}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return dict(await self.request("POST", wire.TRANSFERS, json=body))

    async def install_locks(
        self, transfer_id: str, locks: dict[str, object], authorization_token: str
    ) -> None:
        body = {**locks, "authorization_token": authorization_token}
        await self.request("PUT", wire.transfer_action(transfer_id, "locks"), json=body)

    async def reissue(self, transfer_id: str, locks: dict[str, object]) -> None:
        await self.request("POST", wire.transfer_action(transfer_id, "reissue"), json=locks)

    async def break_glass(self, transfer_id: str, sealed_reason: bytes) -> None:
        await self.request(
            "POST",
            wire.transfer_action(transfer_id, "break-glass"),
            json={"sealed_reason": b64encode_text(sealed_reason)},
        )

    async def revoke(self, transfer_id: str) -> None:
        await self.request("POST", wire.transfer_action(transfer_id, "revoke"))

    async def put_phone_documents(
        self, transfer_id: str, sealed_code: bytes, sealed_summary: bytes | None
    ) -> None:
        body = {"code": b64encode_text(sealed_code)}
        if sealed_summary is not None:
            body["summary"] = b64encode_text(sealed_summary)
        await self.request("PUT", wire.transfer_action(transfer_id, "phone"), json=body)

    async def append(
        self,
        transfer_id: str,
        index: int,
        data: bytes,
        offset: int,
        *,
        ends_at: int | None = None,
        sha256: str | None = None,
    ) -> Appended:
        """PATCH sealed bytes at `offset`; with `ends_at` and `sha256` (of the whole sealed
        object) this PATCH also completes the object."""
        headers = {wire.UPLOAD_OFFSET: str(offset)}
        if ends_at is not None and sha256 is not None:
            headers[wire.UPLOAD_LENGTH] = str(ends_at)
            headers[wire.UPLOAD_SHA256] = sha256
        answer = await self.request(
            "PATCH", wire.sealed_object(transfer_id, index), data=data, headers=headers
        )
        return Appended(int(answer["offset"]), bool(answer["complete"]))

    async def upload_batch(self, transfer_id: str, objects: list[tuple[int, bytes, str]]) -> None:
        """Whole sealed objects, given as (index, bytes, hex SHA-256 of the bytes), in ascending
        order, in one request (`wire.pack_objects`: `wire.BATCH_OBJECTS` and
        `wire.BATCH_UPLOAD_BYTES` at most). Once this returns, the relay holds each complete;
        after a lost answer the same batch may be sent again."""
        await self.request(
            "POST",
            wire.objects(transfer_id),
            data=wire.pack_objects(objects),
            headers={"Content-Type": "application/octet-stream"},
        )

    async def complete_object(self, transfer_id: str, index: int, size: int, sha256: str) -> None:
        await self.request(
            "POST",
            wire.sealed_object(transfer_id, index) + "/complete",
            json={"size": size, "sha256": sha256},
        )

    async def put_manifest_record(
        self, transfer_id: str, seq: int, record: bytes, *, final: bool
    ) -> None:
        await self.request(
            "PUT",
            wire.manifest_record(transfer_id, seq),
            data=record,
            headers={
                wire.MANIFEST_FINAL: "1" if final else "0",
                "Content-Type": "application/octet-stream",
            },
        )

    async def put_manifest_records(
        self, transfer_id: str, first: int, records: list[bytes], *, final: bool
    ) -> None:
        """Several records at once, numbered from `first` (`wire.BATCH_RECORDS` and
        `wire.BATCH_BYTES` at most); `final`: the last one closes the manifest."""
        await self.request(
            "POST",
            wire.manifest_batch(transfer_id),
            data=wire.pack_records(records),
            headers={
                wire.MANIFEST_FROM: str(first),
                wire.MANIFEST_FINAL: "1" if final else "0",
                "Content-Type": "application/octet-stream",
            },
        )

    # -- the patient (the demo plays this part; the phone page does it in a browser) ----------

    async def authorize(self, token: str) -> dict[str, Any]:
        return dict(await self.request("POST", wire.AUTHORIZATIONS, json={"token": token}))

    # -- the receiving site ------------------------------------------------------------------

    async def redemption_salt(self, locator: int) -> bytes:
        body = await self.request("POST", wire.REDEMPTION_SALT, json={"locator": locator})
        return b64decode_text(str(body["salt"]))

    async def redeem(self, body: dict[str, object]) -> dict[str, Any]:
        return dict(await self.request("POST", wire.REDEMPTIONS, json=body))

    async def manifest_page(self, transfer_id: str, start: int, wait: int) -> dict[str, Any]:
        return dict(
            await self.request(
                "GET",
                wire.transfer_action(transfer_id, "manifest"),
                params={"from": str(start), "wait": str(wait)},
            )
        )

    def download(self, transfer_id: str, index: int, start: int = 0) -> AsyncIterator[bytes]:
        return self.stream(wire.sealed_object(transfer_id, index), start)

    async def download_batch(
        self, transfer_id: str, indices: list[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Objects `indices` (`wire.BATCH_OBJECTS` at most) in one request, in that order, as
        (index, block) pairs; each object ends with an empty block. `RelayUnreachable` if the
        connection is lost (ask again for the objects not ended); `RelayRefused` if the relay
        refuses, or answers other objects than asked."""
        try:
            async with self._session.post(
                self.base_url + wire.objects_fetch(transfer_id),
                json={"indices": indices},
                allow_redirects=False,
            ) as response:
                _refuse_redirect(response, self.base_url)
                if response.status >= 400:
                    await _raise_problem(response)
                content = response.content
                for expected in indices:
                    index, size = wire.read_object_frame(
                        await content.readexactly(wire.OBJECT_FRAME.size)
                    )
                    if index != expected:
                        raise RelayRefused(
                            response.status,
                            "",
                            f"The relay sent image {index + 1} where image {expected + 1} "
                            "was asked.",
                            {},
                        )
                    left = size
                    while left:
                        block = await content.readexactly(min(left, DOWNLOAD_BLOCK))
                        left -= len(block)
                        yield index, block
                    yield index, b""
        except aiohttp.ClientConnectorCertificateError as e:
            raise _untrusted(self.base_url, e) from e
        except (
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            asyncio.IncompleteReadError,
            TimeoutError,
        ) as e:
            why = unreachable.reason(e)
            raise RelayUnreachable(
                f"The connection to the relay at {self.base_url} was lost: {why}.", why
            ) from e

    async def receipt(self, transfer_id: str, body: dict[str, object]) -> None:
        await self.request("POST", wire.transfer_action(transfer_id, "receipt"), json=body)


def _untrusted(base_url: str, e: aiohttp.ClientConnectorCertificateError) -> Exception:
    """Not a network hiccup to retry: the relay's certificate is not trusted here."""
    why = getattr(e.certificate_error, "verify_message", "") or str(e.certificate_error)
    return RelayCertificateRefused(
        f"The relay at {base_url} presented a certificate this machine does not trust ({why}). "
        "Nothing was sent. If the relay's operator uses a private certificate authority, set "
        f"{tls.CA_FILE_ENV} to its certificate (ca.pem); otherwise check the address."
    )


def _refuse_redirect(response: aiohttp.ClientResponse, base_url: str) -> None:
    if 300 <= response.status < 400:
        where = response.headers.get("Location", "another address")
        raise RelayRedirected(
            f"The relay at {base_url} answered with a redirect to {where}; trauma-relay does "
            "not follow it with this site's credential. Give the relay's own address (its "
            "https:// address, as its operator gives it)."
        )


# What a gateway answers when the server behind it did not (RFC 9110 15.6.3-5).
GATEWAY = frozenset({502, 503, 504})


def _from_relay(kind: str, body: dict[str, Any]) -> bool:
    """Whether an answer's body is the relay's own: a problem document of its kind, or its
    health's `disk-full` (`health`)."""
    return kind.startswith(wire.PROBLEM_TYPE) or body.get("status") == "disk-full"


async def _raise_problem(response: aiohttp.ClientResponse) -> None:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    # The relay's own sentence is printed as it is: shown escaped, a hostile relay's controls
    # do nothing on the terminal.
    detail = shown(str(body.get("detail") or f"HTTP {response.status} {response.reason}"))
    if response.status == 408:
        # The relay stopped waiting for a body that stalled on the way: a poor connection,
        # handled like a lost one (the caller resumes from what the relay acknowledged).
        raise RelayUnreachable(
            f"The relay stopped waiting for this request: {detail}", "the connection stalled"
        )
    kind = str(body.get("type", ""))
    code = kind.rsplit(":", 1)[-1]
    if response.status in GATEWAY and not _from_relay(kind, body):
        # A proxy in front of the relay (502, 504; a 503 of its own): the request may have
        # reached the relay and been done there, so its outcome is unknown, as when a
        # connection is lost after a request left (`unsent` False): resumed or asked again
        # where that is safe, never taken as the relay's refusal.
        why = f"a proxy in front of it answered {response.status} {response.reason or ''}"
        why = why.rstrip()
        raise RelayUnreachable(
            f"The relay could not be reached: {why}. Check the network, then try again.", why
        )
    if response.status == 503 and code == "stopping":
        # The relay is stopping for a restart and did nothing with this request: briefly out of
        # reach, like a lost connection (the caller waits and tries again, or resumes).
        raise RelayUnreachable(detail, "the relay is stopping for a restart")
    raise RelayRefused(response.status, code, detail, body)
