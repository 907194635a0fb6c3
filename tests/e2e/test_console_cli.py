"""`trauma-relay sender|receiver` through the real command: the printed configuration parses
back to the defaults, bad settings stop with a sentence naming them, and accounts are managed
with passwords that never appear in argv (stdin, or a terminal prompt typed twice)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from e2e.harness import cli_environment, run_cli, trauma_relay_executable
from receiving_site.cli import RECEIVER
from receiving_site.settings import ReceiverSettings
from sending_site.cli import SENDER
from sending_site.settings import SenderSettings
from site_agent.accounts import Accounts
from site_agent.passwords import verify
from site_agent.settings import load

PASSWORD = "correct horse battery staple"
SENDER_PREFIX = SENDER.env_prefix
RECEIVER_PREFIX = RECEIVER.env_prefix
AGENTS = {
    "sender": (SenderSettings, SENDER_PREFIX, "sending"),
    "receiver": (ReceiverSettings, RECEIVER_PREFIX, "receiving"),
}


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_print_config_parses_back_to_the_defaults(agent: str, tmp_path: Path) -> None:
    settings_class, prefix, _ = AGENTS[agent]
    printed = run_cli([agent, "--print-config"], cwd=tmp_path).ok().stdout
    tomllib.loads(printed)  # valid TOML
    file = tmp_path / f"{agent}.toml"
    file.write_text(printed, encoding="utf-8")
    assert load(settings_class, prefix, file=file, environ={}, check=False) == settings_class()
    # The same from a command's --print-config, with --set applied.
    changed = run_cli(
        [agent, "console", "--print-config", "--set", "console.idle_timeout=45m"], cwd=tmp_path
    ).ok()
    assert 'idle_timeout = "45m"' in changed.stdout


def test_a_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    run = run_cli(["sender", "console", "--set", "console.listen=x"], cwd=tmp_path).failed()
    assert run.returncode == 2
    assert run.message == "trauma-relay: console.listen: expected HOST:PORT, got 'x' (from --set)"
    config = tmp_path / "receiver.toml"
    config.write_text('[relay]\nurl = "https://relay.example"\n[pacs]\nport = 0\n', "utf-8")
    run = run_cli(["receiver", "--config", str(config), "console"], cwd=tmp_path).failed()
    assert f"pacs.port: expected a whole number from 1 to 65535, got 0 (in {config})" in (
        run.message
    )
    run = run_cli(["receiver", "console"], cwd=tmp_path).failed()
    assert run.message.startswith("trauma-relay: relay.url: required, and not set.")
    # An address every request would fail on is refused at the start, not at the first send.
    for url, why in (
        ("https://relay.example/api", "it must not hold a path (/api)"),
        ("http://relay.example", "is plain http:// to another machine"),
    ):
        run = run_cli(["sender", "console", "--set", f"relay.url={url}"], cwd=tmp_path).failed()
        assert run.message.startswith("trauma-relay: relay.url: "), run.message
        assert why in run.message


def test_accounts_from_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    where = ["--set", f"state.folder={state}"]
    added = run_cli(["sender", "user", "add", "Nurse.Joy", *where], cwd=tmp_path, stdin=PASSWORD)
    assert "Account 'nurse.joy' added" in added.ok().stdout
    again = run_cli(["sender", "user", "add", "nurse.joy", *where], cwd=tmp_path, stdin=PASSWORD)
    assert "There is already a console account with that name" in again.failed().message
    short = run_cli(["sender", "user", "add", "jsmith", *where], cwd=tmp_path, stdin="short\n")
    assert "at least 15 characters; this one has 5" in short.failed().message
    listed = run_cli(["sender", *where, "user", "list"], cwd=tmp_path).ok().stdout
    assert listed.startswith("nurse.joy  (added ")

    new_password = "a different good passphrase"
    changed = run_cli(
        ["sender", "user", "password", "nurse.joy", *where], cwd=tmp_path, stdin=new_password
    )
    assert "if signed in, it is signed out at its next click" in changed.ok().stdout
    account = Accounts(state / "sending").find("nurse.joy")
    assert account is not None
    assert verify(new_password, account.password)
    assert not verify(PASSWORD, account.password)

    run_cli(["sender", "user", "remove", "nurse.joy", *where], cwd=tmp_path).ok()
    assert Accounts(state / "sending").all() == []
    gone = run_cli(["sender", "user", "remove", "nurse.joy", *where], cwd=tmp_path)
    assert "There is no console account with that name" in gone.failed().message

    audit = (state / "sending" / "console-audit.jsonl").read_text(encoding="utf-8")
    actions = [json.loads(line)["action"] for line in audit.splitlines()]
    assert actions == ["user-added", "password-changed", "user-removed"]
    assert PASSWORD not in audit
    assert new_password not in audit
    # The receiving agent keeps its own accounts.
    assert (
        run_cli(["receiver", *where, "user", "list"], cwd=tmp_path)
        .ok()
        .stdout.startswith("No accounts yet")
    )


def _on_a_terminal(args: list[str], typed: list[str], cwd: Path) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its standard input and output (no controlling
    terminal, so getpass prompts there), answering each prompt with the next of `typed`."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [trauma_relay_executable(), *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=cwd,
        env=cli_environment(None),
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    answers = iter(typed)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 1024)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            seen += chunk
            if seen.endswith(b": "):  # a prompt, waiting
                answer = next(answers, None)
                if answer is not None:
                    os.write(controller, answer.encode() + b"\n")
        return process.wait(timeout=60), seen.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_password_is_typed_twice_at_a_terminal_and_never_shown(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ["receiver", "user", "add", "registrar", "--set", f"state.folder={state}"]
    code, seen = _on_a_terminal(args, [PASSWORD, PASSWORD], tmp_path)
    assert code == 0, seen
    assert "New password for registrar:" in seen
    assert "Type it again:" in seen
    assert PASSWORD not in seen  # not echoed
    account = Accounts(state / "receiving").find("registrar")
    assert account is not None
    assert verify(PASSWORD, account.password)

    args = ["receiver", "user", "add", "typist", "--set", f"state.folder={state}"]
    code, seen = _on_a_terminal(args, [PASSWORD, PASSWORD + "x"], tmp_path)
    assert code == 2
    assert "The two passwords typed were not the same" in seen
    assert Accounts(state / "receiving").find("typist") is None
