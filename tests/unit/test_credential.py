"""Reading the site credential: one line from a file or the environment; anything else is
refused with a sentence, and a file others can read is warned about."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from site_agent.credential import CREDENTIAL_ENV, read_credential
from site_agent.errors import CredentialMalformed, CredentialMissing, CredentialUnreadable

CREDENTIAL = "st-mary-er.Zx8-kq2Lr0_aV9"


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
