"""The receiving agent as a trauma center runs it, for the trauma console's browser tests: a real
relay process with the ER and the trauma center registered, the ER's `push` of a study the
patient authorizes, the agent configured from `trauma-relay receiver --print-config` with an
account from `receiver user add`, and served by `trauma-relay receiver --config FILE` into a
real Orthanc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.harness import E2ERelay, cli_environment, run_cli, trauma_relay_executable
from peers.orthanc import OrthancServer
from peers.ports import free_port
from test_console_cli import _answers  # the console answers its sign-in page

PASSWORD = "correct horse battery staple"
USER = "registrar.kim"
LOCAL_ISSUER = "COUNTY"
START_TIMEOUT = 60.0  # seconds for the agent to answer after it is started
LOG_SHOWN = 20_000  # characters of its log a failing test shows


@dataclass
class ReceivingAgent:
    """`trauma-relay receiver --config FILE` for one trauma center, restartable."""

    root: Path
    config: Path
    url: str
    process: subprocess.Popen[str] | None = None

    @property
    def state(self) -> Path:
        return self.root / "tc-state"

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    def audited(self, action: str) -> list[dict[str, Any]]:
        """The records of `action` in the agent's audit log (`console-audit.jsonl`), oldest
        first."""
        path = self.state / "receiving" / "console-audit.jsonl"
        records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        return [r for r in records if r["action"] == action]

    def start(self) -> ReceivingAgent:
        with self.log.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [trauma_relay_executable(), "receiver", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.root,
                env=cli_environment(None, {"TCP_NODELAY": "1"}),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(f"{self.url}/sign-in"):
            assert self.process.poll() is None, self.log.read_text("utf-8")
            assert time.monotonic() < deadline, "the agent did not answer within a minute"
            time.sleep(0.2)
        return self

    def kill(self) -> None:
        """SIGKILL: the agent stops at once, wherever it is."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log.exists():  # pytest shows what a test printed only when it fails
            print(f"--- the receiving agent's log ({self.log}), its end:")
            print(self.log.read_text("utf-8", errors="replace")[-LOG_SHOWN:])


def configured_agent(
    relay: E2ERelay, orthanc: OrthancServer, root: Path, extra: dict[str, str] | None = None
) -> ReceivingAgent:
    """The agent's configuration written from `--print-config` (with `extra` settings), and an
    account added."""
    root.mkdir(parents=True, exist_ok=True)
    credential = root / "relay-credential"
    credential.write_text(relay.receiver_credential + "\n", encoding="utf-8")
    credential.chmod(0o600)
    port = free_port()
    settings = {
        "relay.url": relay.url,
        "relay.credential_file": str(credential),
        "pacs.ae_title": orthanc.ae_title,
        "pacs.host": orthanc.host,
        "pacs.port": str(orthanc.dicom_port),
        "identity.local_issuer": LOCAL_ISSUER,
        "state.folder": str(root / "tc-state"),
        "console.listen": f"127.0.0.1:{port}",
        "console.site_name": "County Trauma Center",
        **(extra or {}),
    }
    assignments = [word for key, value in settings.items() for word in ("--set", f"{key}={value}")]
    printed = run_cli(["receiver", "--print-config", *assignments], cwd=root).ok()
    config = root / "receiver.toml"
    config.write_text(printed.stdout, encoding="utf-8")
    add = ["receiver", "user", "add", USER, "--config", str(config)]
    run_cli(add, cwd=root, stdin=PASSWORD).ok()
    return ReceivingAgent(root, config, f"http://127.0.0.1:{port}")


def er_transfers(relay: E2ERelay, er_state: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    """`trauma-relay transfers --json` at the ER that pushed, by transfer id."""
    listing = relay.as_sender(["transfers", "--json", "--state", str(er_state)], workdir=workdir)
    return {t["transfer_id"]: t for t in listing.ok().json()["transfers"]}


@contextlib.asynccontextmanager
async def pacs_paused_at_first_image(
    orthanc: OrthancServer, within_ms: float
) -> AsyncIterator[int]:
    """Once the PACS holds a first image (an import has begun storing; asserted within
    `within_ms`), it stops answering (`OrthancServer.pause`) for the block, which is given how
    many images it held then; it answers again when the block ends, however it ends. So a test
    sees an import in the middle, at whatever point storing stopped."""
    deadline = time.monotonic() + within_ms / 1000
    while (stored := orthanc.get_json("/statistics")["CountInstances"]) == 0:
        assert time.monotonic() < deadline, "the import did not start"
        await asyncio.sleep(0.01)
    orthanc.pause()
    try:
        yield stored
    finally:
        orthanc.resume()
