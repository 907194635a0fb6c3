"""The operators' files stay usable: the example relay.toml loads as the relay loads it, the
agents' example configurations load as the agents load them, and the systemd units pass
systemd's own check (when systemd-analyze is on this machine)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from receiving_site.settings import ReceiverSettings
from relay import config as relay_config
from relay.settings import SETTINGS
from sending_site.settings import SenderSettings
from site_agent.settings import load

OPS = Path(__file__).resolve().parents[2] / "ops"


def test_the_example_relay_toml_loads_with_config(tmp_path: Path) -> None:
    config = relay_config.load(environ={}, config_file=OPS / "config" / "relay.toml")
    assert config.data_dir == Path("/var/lib/trauma-relay")
    assert (config.host, config.port) == ("0.0.0.0", 443)  # noqa: S104 (the example's choice)
    assert config.public_url == "https://relay.hospital.example"
    assert config.tls_certificate == Path("/etc/trauma-relay/tls/relay.pem")
    assert config.log_format == "json"
    assert config.delivered_grace == 3600
    assert config.metrics_allowed == ("127.0.0.1", "::1")
    # As the operator checks an edited copy: the command reads it and prints it back whole.
    checked = subprocess.run(
        [sys.executable, "-m", "trauma_relay.cli", "relay", "--print-config", "--config",
         str(OPS / "config" / "relay.toml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "printed.toml").write_text(checked.stdout)
    assert relay_config.load(environ={}, config_file=tmp_path / "printed.toml") == config


def test_the_example_relay_toml_writes_out_every_setting() -> None:
    """The runbook promises the example "holds every setting with what it does and its
    default": a setting added to the relay is added to the example too."""
    example = tomllib.loads((OPS / "config" / "relay.toml").read_text())
    missing = [s.name for s in SETTINGS if s.key not in example.get(s.section, {})]
    assert missing == []


def test_the_example_relay_toml_also_serves_from_the_data_folder(tmp_path: Path) -> None:
    """Copied into the data folder as relay.toml (where older relays read it), all but the
    data folder itself, which is the folder it is in."""
    text = (OPS / "config" / "relay.toml").read_text()
    text = text.replace('data_dir = "/var/lib/trauma-relay"', "")
    (tmp_path / "relay.toml").write_text(text)
    config = relay_config.load(tmp_path, environ={})
    assert (config.data_dir, config.public_url) == (tmp_path, "https://relay.hospital.example")


@pytest.mark.parametrize(
    ("name", "settings", "prefix"),
    [
        ("sender.toml", SenderSettings, "TRAUMA_RELAY_SENDER"),
        ("receiver.toml", ReceiverSettings, "TRAUMA_RELAY_RECEIVER"),
    ],
)
def test_the_example_agent_configurations_load(name: str, settings: type, prefix: str) -> None:
    loaded = load(settings, prefix, file=OPS / "config" / name, assignments=[], check=True)
    assert loaded.relay.url == "https://relay.hospital.example"
    assert str(loaded.relay.credential_file).startswith("/etc/trauma-relay/")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_pass_systemds_check(tmp_path: Path) -> None:
    executable = Path(sys.executable).with_name("trauma-relay")
    units = []
    for unit in sorted((OPS / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/trauma-relay/.venv/bin/trauma-relay", str(executable))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    assert len(units) == 4
    run = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "trauma-relay" not in run.stderr, run.stderr  # no warning about our units
