"""`trauma-relay audit forward --follow --position FILE` against a running relay: records are
sent as the relay writes them, to a TLS syslog receiver written here (asyncio, certificates
from `ops/make_certificates.py`); a forwarder killed and started again goes on after the last
record it forwarded, losing none and repeating none that it had finished."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from e2e.harness import E2ERelay, cli_environment, run_cli, trauma_relay_executable
from relay.audit_trail.follow import load_position

REPO = Path(__file__).resolve().parents[2]
SEQUENCE = re.compile(rb'^<\d+>1 \S+ \S+ trauma-relay - IHE\+RFC-3881 \[meta sequenceId="(\d+)"\] ')
WAIT = 60.0  # seconds for anything to arrive
# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class SyslogReceiver:
    """A TLS syslog listener (RFC 5425 frames) that keeps the sequence number of every message
    it got, in order of arrival, over any number of connections."""

    ca: Path
    port: int = 0
    numbers: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = b""
        try:
            while True:
                try:
                    length = await reader.readuntil(b" ")
                except asyncio.IncompleteReadError as e:
                    left = e.partial
                    break
                message = await reader.readexactly(int(length[:-1]))
                match = SEQUENCE.match(message)
                assert match, message[:120]
                self.numbers.append(int(match.group(1)))
                self.arrived.set()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        assert left == b"", left  # the stream ended between messages

    async def until(self, count: int) -> list[int]:
        """Wait until `count` messages have arrived; the numbers received."""
        async with asyncio.timeout(WAIT):
            while len(self.numbers) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return list(self.numbers)


@pytest_asyncio.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[SyslogReceiver]:
    tls = tmp_path / "tls"
    made = await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, str(REPO / "ops/make_certificates.py"), "--out", str(tls)),
            *("--name", "localhost", "--ip", "127.0.0.1"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls / "relay.pem", tls / "relay-key.pem")
    got = SyslogReceiver(tls / "ca.pem")
    server = await asyncio.start_server(got.serve, "127.0.0.1", 0, ssl=context)
    got.port = server.sockets[0].getsockname()[1]
    async with server:
        yield got


def _refused_request(relay: E2ERelay) -> None:
    """A request with a credential the relay does not know: one audit record."""
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1:<relay port>
        relay.url + "/api/v1/sites", headers={"Authorization": "Bearer not-a-known-credential"}
    )
    with contextlib.suppress(urllib.error.HTTPError), _OPENER.open(request, timeout=30):
        pass


async def _records(relay: E2ERelay, tmp_path: Path) -> int:
    args = ["audit", "verify", "--data", str(relay.data_dir), "--json"]
    verified = (await asyncio.to_thread(run_cli, args, cwd=tmp_path)).ok().json()
    assert verified["intact"] is True
    count: int = verified["records"]
    return count


def _wait_for_position(path: Path, seq: int) -> None:
    deadline = time.monotonic() + WAIT
    while not (path.exists() and json.loads(path.read_text())["last_seq"] == seq):
        assert time.monotonic() < deadline, f"the position never reached {seq}"
        time.sleep(0.05)


async def _position(path: Path, seq: int) -> None:
    """Wait until the forwarder has kept `seq` as its position."""
    await asyncio.to_thread(_wait_for_position, path, seq)


async def _forwarder(
    relay: E2ERelay, receiver: SyslogReceiver, position: Path
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        trauma_relay_executable(),
        *("audit", "forward", "--data", str(relay.data_dir), "--ca", str(receiver.ca)),
        *("--to", f"localhost:{receiver.port}", "--position", str(position)),
        *("--follow", "--interval", "0.2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_environment(None),
    )


@pytest.mark.asyncio
async def test_forwarding_follows_the_trail_and_resumes_after_a_kill(
    fresh_relay: E2ERelay, receiver: SyslogReceiver, tmp_path: Path
) -> None:
    relay, position = fresh_relay, tmp_path / "forwarded.json"
    first = await _forwarder(relay, receiver, position)
    try:
        count = await _records(relay, tmp_path)
        assert await receiver.until(count) == list(range(1, count + 1))
        await _position(position, count)

        # New records while it runs are sent without asking.
        for _ in range(3):
            await asyncio.to_thread(_refused_request, relay)
        assert await receiver.until(count + 3) == list(range(1, count + 4))
        await _position(position, count + 3)
    finally:
        first.kill()  # SIGKILL: no chance to tidy up
        await first.communicate()

    # Written while no forwarder runs: the next one sends them, and only them.
    for _ in range(2):
        await asyncio.to_thread(_refused_request, relay)
    total = await _records(relay, tmp_path)
    assert total == count + 5
    second = await _forwarder(relay, receiver, position)
    try:
        assert await receiver.until(total) == list(range(1, total + 1))
        await _position(position, total)
        # One more: it comes next, and nothing before it was sent again meanwhile.
        await asyncio.to_thread(_refused_request, relay)
        assert await receiver.until(total + 1) == list(range(1, total + 2))
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(second.communicate(), WAIT)
    assert second.returncode == 0, err.decode()
    stopped = " ".join(err.decode().split())
    # total or total + 1: the last batch may have been cut short by the SIGTERM
    kept = load_position(position).seq
    assert kept in (total, total + 1)
    assert f"Stopped. {position} keeps record {kept}, the last one read" in stopped
    assert "Traceback" not in err.decode()


@pytest.mark.asyncio
async def test_a_position_kept_for_another_trail_is_refused(
    fresh_relay: E2ERelay, receiver: SyslogReceiver, tmp_path: Path
) -> None:
    position = tmp_path / "forwarded.json"
    position.write_text(json.dumps({"last_seq": 2, "last_hash": "00" * 32}))
    forwarder = await _forwarder(fresh_relay, receiver, position)
    _, err = await asyncio.wait_for(forwarder.communicate(), WAIT)
    assert forwarder.returncode == 2
    assert "was kept for another audit trail" in " ".join(err.decode().split())
    assert receiver.numbers == []
