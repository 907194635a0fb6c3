"""Reading the site credential: one line from a file or the environment; anything else is
refused with a sentence, and a file others can read is warned about. A missing one is told in
the words of where it is set: the command line's option, or an agent's setting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from receiving_site.cli import RECEIVER
from sending_site.cli import SENDER
from site_agent.commands import Agent
from site_agent.credential import CREDENTIAL_ENV, read_credential
from site_agent.errors import CredentialMalformed, CredentialMissing, CredentialUnreadable
from site_agent.settings import load, render

CREDENTIAL = "st-mary-er.Zx8-kq2Lr0_aV9"
URL = "relay.url=https://relay.example"


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "credential"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_one_line_file_with_its_newline(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_credential(_file(tmp_path, CREDENTIAL + "\n")) == CREDENTIAL
    assert caplog.records == []


def test_environment_when_no_file() -> None:
    assert read_credential(None, {CREDENTIAL_ENV: f" {CREDENTIAL}\n"}) == CREDENTIAL


@pytest.mark.parametrize(
    "text",
    [
        f"{CREDENTIAL}\n{CREDENTIAL}\n",
        f"# st mary\n{CREDENTIAL}",
        f"credential: {CREDENTIAL}",
        f"{CREDENTIAL}\x1b[2J",
    ],
)
def test_anything_but_one_line_is_refused_with_a_sentence(tmp_path: Path, text: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(CredentialMalformed) as refused:
        read_credential(path)
    message = str(refused.value)
    assert str(path) in message
    assert "only the one line" in message
    assert CREDENTIAL not in message


def test_malformed_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(CredentialMalformed, match=CREDENTIAL_ENV):
        read_credential(None, {CREDENTIAL_ENV: "a\nb"})


def test_a_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _file(tmp_path, CREDENTIAL, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="site_agent.credential"):
        assert read_credential(path) == CREDENTIAL
    assert [r.getMessage() for r in caplog.records] == [
        f"The credential file {path} can be read by other users of this machine: make it "
        f"readable by this user only (chmod 600 {path})."
    ]


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(CredentialMissing):
        read_credential(None, {})
    with pytest.raises(CredentialMissing):
        read_credential(_file(tmp_path, "\n"))
    with pytest.raises(CredentialUnreadable, match="could not be read"):
        read_credential(tmp_path / "absent")


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    path = _file(tmp_path, "\n")
    with pytest.raises(CredentialMissing) as missing:
        read_credential(path)
    said = f"The credential file {path} is empty: it must hold the credential."
    assert str(missing.value) == said


def test_the_command_line_names_its_option() -> None:
    with pytest.raises(CredentialMissing) as missing:
        read_credential(None, {})
    assert "pass --credential-file FILE" in str(missing.value)


@pytest.mark.parametrize("agent", [SENDER, RECEIVER], ids=lambda a: a.command)
def test_an_agent_names_its_setting_not_an_option(agent: Agent) -> None:
    settings = load(agent.settings, agent.env_prefix, environ={}, assignments=(URL,))
    with pytest.raises(CredentialMissing) as missing:
        agent.credential(settings).read({})
    variable = f"{agent.env_prefix}_RELAY_CREDENTIAL_FILE"
    for said in (missing.value.detail, missing.value.for_console):
        assert "credential_file in the [relay] section of the agent's settings file" in said
        assert f"(or {variable})" in said
        assert "--" not in said
    assert "or set TRAUMA_RELAY_CREDENTIAL; then start the agent again" in missing.value.detail
    assert missing.value.for_console.startswith("This agent has no site credential")
    # What it names is that setting: in the environment, and as the settings file writes it.
    environ = {variable: "/etc/er.credential"}
    named = load(agent.settings, agent.env_prefix, environ=environ, assignments=(URL,))
    assert named.relay.credential_file == Path("/etc/er.credential")
    printed = render(settings, title="", prefix=agent.env_prefix, command="")
    assert "[relay]\n" in printed
    assert '\ncredential_file = ""\n' in printed.split("[relay]", 1)[1].split("\n[", 1)[0]
