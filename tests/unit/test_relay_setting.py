"""`site_agent.relay_setting.relay_url`: --relay, else TRAUMA_RELAY_URL, else the settings file."""

from __future__ import annotations

from pathlib import Path

import pytest

from site_agent.errors import RelayNotSet, SettingsUnreadable
from site_agent.relay_setting import relay_url


def test_the_order_is_flag_environment_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('relay = "https://file.example"\n')
    env = {"TRAUMA_RELAY_URL": "https://env.example"}
    assert relay_url("https://flag.example", tmp_path, environ=env) == "https://flag.example"
    assert relay_url(None, tmp_path, environ=env) == "https://env.example"
    assert relay_url(None, tmp_path, environ={}) == "https://file.example"
    assert relay_url("", tmp_path, environ={"TRAUMA_RELAY_URL": " "}) == "https://file.example"


def test_an_explicit_file_must_exist_the_default_one_need_not(tmp_path: Path) -> None:
    with pytest.raises(RelayNotSet) as raised:
        relay_url(None, tmp_path, environ={})
    assert "TRAUMA_RELAY_URL" in str(raised.value)
    assert str(tmp_path / "config.toml") in str(raised.value)
    with pytest.raises(SettingsUnreadable, match="does not exist"):
        relay_url(None, tmp_path, tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "why"),
    [("relay = [1]\n", "text in quotes"), ("relay = \n", "not valid TOML"), (b"\xff", "TOML")],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, text: str | bytes, why: str) -> None:
    path = tmp_path / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(SettingsUnreadable, match=why):
        relay_url(None, tmp_path, environ={})
