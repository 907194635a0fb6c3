"""Each agent's console as staff get it: configured from the real command's --print-config,
an account added with `trauma-relay <agent> user add`, served by `trauma-relay <agent> console
--config FILE`, and signed in to in Chromium at 1366 x 768."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from console_browsing import expect_signed_in_as, sign_in, snap, workstation
from e2e.harness import cli_environment, run_cli, trauma_relay_executable
from peers.ports import free_port
from playwright.async_api import Browser, expect

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

PASSWORD = "correct horse battery staple"
HOME = {
    "sender": ("Recent studies", "No study has arrived yet"),
    "receiver": ("Enter a code", "Type the 16 characters"),
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serving(agent: str, config: Path, cwd: Path, url: str) -> Iterator[subprocess.Popen[str]]:
    """`trauma-relay AGENT console --config CONFIG`, until it answers; stopped afterwards."""
    process = subprocess.Popen(
        [trauma_relay_executable(), agent, "console", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=cli_environment(None),
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/sign-in"):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the console did not start within a minute"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("agent", ["sender", "receiver"])
async def test_the_console_served_by_the_command(
    agent: str, tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    printed = run_cli(
        [
            agent,
            "--print-config",
            "--set",
            "relay.url=https://relay.example",
            "--set",
            f"state.folder={tmp_path / 'state'}",
            "--set",
            f"console.listen=127.0.0.1:{port}",
            "--set",
            "console.site_name=County Hospital",
        ],
        cwd=tmp_path,
    ).ok()
    config = tmp_path / f"{agent}.toml"
    config.write_text(printed.stdout, encoding="utf-8")
    run_cli(
        [agent, "user", "add", "jsmith", "--config", str(config)], cwd=tmp_path, stdin=PASSWORD
    ).ok()

    url = f"http://127.0.0.1:{port}"
    heading, placeholder = HOME[agent]
    with serving(agent, config, tmp_path, url) as process:
        async with workstation(browser) as page:
            await sign_in(page, url, "jsmith", PASSWORD)
            await expect_signed_in_as(page, "jsmith")
            await expect(page.get_by_role("heading", name=heading)).to_be_visible()
            await expect(page.locator("main")).to_contain_text(placeholder)
            await expect(page.locator(".site-name")).to_have_text("County Hospital")
            await snap(page, f"cli-{agent}-home.png")
    log = process.communicate()[0]
    assert f"at {url}" in log
    assert PASSWORD not in log
    # No relay credential is set: the console runs, and its log says so from the start, naming
    # the agent's setting (as its file writes it, and its environment variable), not an option.
    assert "TRAUMA_RELAY_CREDENTIAL" in log
    assert "credential_file in the [relay] section" in log
    assert f"TRAUMA_RELAY_{agent.upper()}_RELAY_CREDENTIAL_FILE" in log
    assert "--credential-file" not in log
    assert "Nothing can reach the relay until this is fixed." in log
    folder = {"sender": "sending", "receiver": "receiving"}[agent]
    audit = (tmp_path / "state" / folder / "console-audit.jsonl").read_text("utf-8")
    assert '"action": "sign-in"' in audit
