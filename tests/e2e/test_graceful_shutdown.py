"""Acceptance: SIGTERM stops the relay gracefully. It stops accepting connections at once, lets
an upload that is mid-body finish and acknowledges it (or, past its shutdown timeout, cuts it off
unacknowledged), then exits 0. After a restart, what was acknowledged is there with the right
SHA-256, and nothing unacknowledged is counted."""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from relay_harness import RECEIVER

from e2e.harness import E2ERelay
from relay.storage.files import WRITE_BATCH

# Bytes sent before the SIGTERM, and after it: more than one write batch, so the relay has made
# the object's file (and written the first batch) while it waits for the rest of the body.
HALF = WRITE_BATCH + 256 * 1024
WAIT_SECONDS = 60.0
STOPPING = b"stopping: no new connections"
# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_SECONDS} s for {what}"
        await asyncio.sleep(0.05)


async def _call(
    http: aiohttp.ClientSession, relay: E2ERelay, method: str, path: str, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {relay.sender_credential}", **kw.pop("headers", {})}
    async with http.request(method, relay.url + path, headers=headers, **kw) as response:
        return response.status, await response.json(content_type=None)


async def _new_transfer(http: aiohttp.ClientSession, relay: E2ERelay) -> str:
    status, body = await _call(
        http, relay, "POST", "/api/v1/transfers", json={"recipient": RECEIVER}
    )
    assert status == 201, body
    return str(body["transfer_id"])


def _object_file(relay: E2ERelay, transfer_id: str) -> Path | None:
    found = [p for p in (relay.data_dir / "objects").rglob("*") if p.is_file()]
    return next((p for p in found if transfer_id in str(p)), None)


def _refuses_connections(url: str) -> bool:
    try:
        with _OPENER.open(url + "/healthz", timeout=5):
            return False
    except (urllib.error.URLError, ConnectionError):
        return True


class _SlowBody:
    """An upload body sent in two halves; the second waits for `go`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.go = asyncio.Event()

    async def __call__(self) -> AsyncIterator[bytes]:
        yield self.data[:HALF]
        await self.go.wait()
        yield self.data[HALF:]


def _proc(relay: E2ERelay) -> subprocess.Popen[bytes]:
    assert relay.process.proc is not None
    return relay.process.proc


async def _start_slow_upload(
    http: aiohttp.ClientSession, relay: E2ERelay, sealed: bytes
) -> tuple[str, _SlowBody, asyncio.Task[tuple[int, Any]]]:
    transfer_id = await _new_transfer(http, relay)
    body = _SlowBody(sealed)
    headers = {
        "Upload-Offset": "0",
        "Upload-Length": str(len(sealed)),
        "Upload-SHA256": hashlib.sha256(sealed).hexdigest(),
    }
    path = f"/api/v1/transfers/{transfer_id}/objects/0"
    upload = asyncio.create_task(_call(http, relay, "PATCH", path, data=body(), headers=headers))
    # The relay is writing this object (it made the file with the body's first batch).
    await _until(lambda: _object_file(relay, transfer_id) is not None, "the upload to begin")
    return transfer_id, body, upload


async def _holding(http: aiohttp.ClientSession, relay: E2ERelay, transfer_id: str) -> Any:
    status, body = await _call(http, relay, "GET", f"/api/v1/transfers/{transfer_id}/objects")
    assert status == 200, body
    return body


def _recorded(relay: E2ERelay, transfer_id: str) -> tuple[int, int, str | None] | None:
    """What the relay's database says it holds of object 0: acknowledged offset, complete, sha."""
    rows = relay.query(
        "SELECT durable_offset, complete, sha256 FROM objects WHERE transfer_id = ? AND idx = 0",
        transfer_id,
    )
    return (int(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None


@pytest.mark.asyncio
async def test_an_upload_mid_body_at_sigterm_finishes_and_is_acknowledged(tmp_path: Path) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    sealed = secrets.token_bytes(2 * HALF)
    try:
        async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as other:
            transfer_id, body, upload = await _start_slow_upload(http, relay, sealed)
            await _holding(other, relay, transfer_id)  # its connection is kept alive, idle
            mark = relay.log_file.stat().st_size
            _proc(relay).send_signal(signal.SIGTERM)
            await _until(lambda: STOPPING in relay.log_file.read_bytes()[mark:], "the stop")
            assert _refuses_connections(relay.url), "a new connection was accepted"
            # A new request on a kept-alive connection is told to come back, and let go.
            path = f"/api/v1/transfers/{transfer_id}/objects"
            headers = {"Authorization": f"Bearer {relay.sender_credential}"}
            async with other.get(relay.url + path, headers=headers) as refused:
                assert refused.status == 503
                assert (await refused.json(content_type=None))["type"].endswith(":stopping")
                assert refused.headers["Retry-After"] == "5"
                assert refused.headers["Connection"].lower() == "close"
            assert _proc(relay).poll() is None  # still finishing the upload
            body.go.set()
            status, answer = await upload
            assert (status, answer) == (200, {"offset": len(sealed), "complete": True})
            assert await asyncio.to_thread(_proc(relay).wait, WAIT_SECONDS) == 0
            assert b"relay stopped" in relay.log_file.read_bytes()[mark:]

            relay.start()
            holding = await _holding(http, relay, transfer_id)
        stored = _object_file(relay, transfer_id)
        assert stored is not None
        assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(sealed).digest()
        assert holding["objects"] == [{"index": 0, "offset": len(sealed), "complete": True}]
        assert _recorded(relay, transfer_id) == (len(sealed), 1, hashlib.sha256(sealed).hexdigest())
    finally:
        relay.stop()


@pytest.mark.asyncio
async def test_an_upload_past_the_shutdown_timeout_is_cut_off_unacknowledged(
    tmp_path: Path,
) -> None:
    relay = E2ERelay(
        tmp_path / "relay", relay_args=["--set", "server.shutdown_timeout_seconds=0.5"]
    ).start()
    sealed = secrets.token_bytes(2 * HALF)
    try:
        async with aiohttp.ClientSession() as http:
            transfer_id, body, upload = await _start_slow_upload(http, relay, sealed)
            _proc(relay).send_signal(signal.SIGTERM)
            # The client never sends the rest: the relay gives up on it and stops anyway.
            assert await asyncio.to_thread(_proc(relay).wait, WAIT_SECONDS) == 0
            body.go.set()
            try:
                status, answer = await upload
            except aiohttp.ClientError:
                pass  # cut off: no answer at all
            else:
                assert status != 200, answer

            relay.start()
            before = await _holding(http, relay, transfer_id)
            assert before["objects"] in ([], [{"index": 0, "offset": 0, "complete": False}])
            assert _recorded(relay, transfer_id) in (None, (0, 0, None))
            # The sender resumes from what was acknowledged (nothing): the object completes.
            status, answer = await _call(
                http,
                relay,
                "PATCH",
                f"/api/v1/transfers/{transfer_id}/objects/0",
                data=io.BytesIO(sealed),
                headers={
                    "Upload-Offset": "0",
                    "Upload-Length": str(len(sealed)),
                    "Upload-SHA256": hashlib.sha256(sealed).hexdigest(),
                },
            )
            assert (status, answer) == (200, {"offset": len(sealed), "complete": True})
        stored = _object_file(relay, transfer_id)
        assert stored is not None
        assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(sealed).digest()
    finally:
        relay.stop()
