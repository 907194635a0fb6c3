"""Run a real relay for tests: in-process on port 0 (`running_relay`), or as the real
`trauma-relay relay` command in a subprocess (`RelayProcess`) for crash and CLI tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from peers.ports import free_port

from relay import config as relay_config
from relay.app import make_app
from relay.config import Clock
from relay.sites import add_site
from relay.tls import server_context

SENDER = "st-mary-er"
RECEIVER = "county-trauma"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Relay:
    url: str
    data_dir: Path
    sender_credential: str
    receiver_credential: str
    app: web.Application | None = None


def make_certificates(folder: Path, *, ip: str) -> Path:
    """A private authority and a relay certificate for `ip`, made by the operators' script
    (`ops/make_certificates.py`); the folder holding ca.pem, relay.pem and relay-key.pem."""
    script = Path(__file__).resolve().parents[1] / "ops" / "make_certificates.py"
    made = subprocess.run(
        [sys.executable, str(script), "--out", str(folder), "--name", "relay.test", "--ip", ip],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return folder


async def register_sites(data_dir: Path) -> tuple[str, str]:
    er = await add_site(data_dir, SENDER, "sending", "St. Mary's Emergency Department")
    tc = await add_site(data_dir, RECEIVER, "receiving", "County Level I Trauma Center")
    return er.credential, tc.credential


@asynccontextmanager
async def running_relay(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    sweep: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    registered: tuple[str, str] | None = None,
    **overrides: object,
) -> AsyncIterator[Relay]:
    """A relay on a free port of `host` (or on `port`) with two sites registered (SENDER and
    RECEIVER); `registered`: their credentials, the sites having been registered already
    (`register_sites`), for a relay that comes up after its sites are used."""
    sending, receiving = registered or await register_sites(data_dir)
    extra: dict[str, object] = dict(overrides)
    if clock is not None:
        extra["clock"] = clock
    config = relay_config.load(data_dir, "127.0.0.1:0", environ={}, **extra)
    app = make_app(config, sweep=sweep)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=server_context(config))
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if config.tls_certificate else "http"
    try:
        yield Relay(f"{scheme}://{host}:{port}", data_dir, sending, receiving, app)
    finally:
        await runner.cleanup()


class RelayProcess:
    """`trauma-relay relay` as a child process; `kill()` is SIGKILL, `start()` restarts it on
    the same port and data directory."""

    def __init__(
        self,
        data_dir: Path,
        log_file: Path,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)  # more `trauma-relay relay` options (--set ...)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trauma_relay.cli",
                "relay",
                "--data",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log_file.read_text()[-2000:]}")
            try:
                # S310 is fine here: the URL is our own relay on loopback, built from http:// above
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("relay did not become healthy in 30 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
