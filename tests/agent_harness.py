"""`trauma-relay sender --config FILE` as a child process, set up as a hospital would: a TOML
configuration, the relay credential in a file, an account added with `trauma-relay sender user
add`; and a small console client (cookies, CSRF token) for tests that drive it over HTTP."""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from inbox_harness import stop_process, trauma_relay_command
from peers import PEER_ENVIRONMENT
from peers.dcmtk import storescu
from peers.ports import free_port

START_TIMEOUT = 60.0  # seconds for the agent to listen
READY = "Receiving DICOM as"
NURSE = "nurse.joy"
NURSE_PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class AgentProcess:
    """The sending agent on 127.0.0.1: DICOM on `dicom_port`, the console at `url`."""

    def __init__(
        self,
        root: Path,
        relay_url: str,
        credential: str,
        *,
        ae_title: str = "TRAUMARELAY",
        pacs: tuple[str, str, int] | None = None,
        pacs_web: str = "",
        more_config: str = "",
    ) -> None:
        self.root = root
        self.more_config = more_config  # TOML sections appended to the configuration
        root.mkdir(parents=True, exist_ok=True)
        self.ae_title = ae_title
        self.dicom_port = free_port()
        self.console_port = free_port()
        self.url = f"http://127.0.0.1:{self.console_port}"
        self.state = root / "state"
        self.spool = root / "spool"
        self.log_path = root / "agent.log"
        credential_file = root / "relay-credential"
        credential_file.write_text(credential + "\n")
        credential_file.chmod(0o600)
        self.credential_file = credential_file
        self.relay_url = relay_url
        self.pacs = pacs  # (AE title, host, port); may be set before `start`
        self.pacs_web = pacs_web  # the PACS's DICOMweb base URL: Fetch over WADO-RS
        self.config = root / "sender.toml"
        self.write_config()
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        """The agent's configuration file, as the hospital's IT would write it."""
        pacs_section = ""
        if self.pacs is not None:
            ae, host, port = self.pacs
            pacs_section = f'[pacs]\nae_title = "{ae}"\nhost = "{host}"\nport = {port}\n'
        if self.pacs_web:
            pacs_section += f'[pacs_web]\nurl = "{self.pacs_web}"\n'
        self.config.write_text(
            f'[relay]\nurl = "{self.relay_url}"\ncredential_file = "{self.credential_file}"\n'
            f'[dicom]\nae_title = "{self.ae_title}"\nlisten = "127.0.0.1:{self.dicom_port}"\n'
            f'[spool]\nfolder = "{self.spool}"\nstable_age = "1s"\n'
            f"{pacs_section}"
            f'[console]\nlisten = "127.0.0.1:{self.console_port}"\n'
            'site_name = "St. Mary\'s Emergency Department"\n'
            f'[state]\nfolder = "{self.state}"\n'
            f"{self.more_config}"
        )

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAUMA_RELAY_")}
        return {**env, **PEER_ENVIRONMENT, "PYTHONUNBUFFERED": "1"}

    def add_user(self, name: str = NURSE, password: str = NURSE_PASSWORD) -> None:
        """`trauma-relay sender user add NAME --config FILE`, the password on standard input."""
        run = subprocess.run(
            [trauma_relay_command(), "sender", "user", "add", name, "--config", str(self.config)],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr

    def start(self) -> AgentProcess:
        """Start the agent; wait until DICOM listens and the console answers."""
        self.write_config()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [trauma_relay_command(), "sender", "--config", str(self.config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env=self.environment(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not (READY in self.log() and self._answers()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the agent did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"{self.url}/sign-in", timeout=2
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (SIGKILL if it does not stop in time)."""
        return stop_process(self.proc)

    def receive(self, folder: Path) -> None:
        """DCMTK storescu sends every file in `folder` to the agent, as the ER's PACS would."""
        sent = storescu(self.dicom_port, [folder], called_ae_title=self.ae_title)
        assert sent.returncode == 0, sent.stderr

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def audit(self) -> str:
        path = self.state / "sending" / "console-audit.jsonl"
        return path.read_text() if path.exists() else ""


@asynccontextmanager
async def agent_holding(
    root: Path, relay_url: str, credential: str, study: Path, *, more_config: str = ""
) -> AsyncIterator[AgentProcess]:
    """For tests on an event loop: an agent with the nurse's account, running, that has
    received the study in `study` (DCMTK storescu); stopped on leaving."""
    agent = AgentProcess(root, relay_url, credential, more_config=more_config)
    await asyncio.to_thread(agent.add_user)
    await asyncio.to_thread(agent.start)
    try:
        await asyncio.to_thread(agent.receive, study)
        yield agent
    finally:
        await asyncio.to_thread(agent.stop)


@contextmanager
def running_agent(agent: AgentProcess) -> Iterator[AgentProcess]:
    try:
        yield agent.start()
    finally:
        agent.stop()


class ConsoleClient:
    """A signed-in user of the console over plain HTTP (cookies kept, CSRF token sent)."""

    def __init__(self, url: str) -> None:
        self.url = url
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
        )
        self.token = ""

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, final address, body), following redirects."""
        try:
            with self.opener.open(self.url + path, timeout=120) as r:
                return r.status, r.url, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.url, e.read().decode()

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode({"csrf_token": self.token, **form}).encode()
        request = urllib.request.Request(self.url + path, data=body, method="POST")  # noqa: S310
        try:
            with self.opener.open(request, timeout=600) as r:
                return r.status, r.url, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.url, e.read().decode()

    def sign_in(self, user: str = NURSE, password: str = NURSE_PASSWORD) -> ConsoleClient:
        _, _, page = self.get("/sign-in")
        found = _TOKEN.search(page)
        assert found, page
        self.token = found.group(1)
        status, _, home = self.post("/sign-in", {"user": user, "password": password})
        assert status == 200, home
        found = _TOKEN.search(home)
        assert found, home
        self.token = found.group(1)
        return self
