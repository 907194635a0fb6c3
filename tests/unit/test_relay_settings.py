"""The relay's settings file, `--set` and `--print-config` (`relay.config`, `relay.settings`):
every `RelayConfig` field has a setting, the printed configuration reads back as itself, each
layer wins over the one below, the data folder's flat relay.toml and the older environment
variables still work, and a wrong name or value is refused with a sentence naming it."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import pytest

from relay import config, logs, settings
from relay.config import RelayConfig
from relay.errors import ConfigError
from relay.settings import SECTIONS, SETTINGS


def _printed(tmp_path: Path, **given: object) -> str:
    return config.render(config.resolve(config.Sources(environ={}, **given)))  # type: ignore[arg-type]


def test_every_field_of_the_configuration_has_a_setting() -> None:
    fields = {f.name for f in dataclasses.fields(RelayConfig)} - {"clock"}
    covered = {part for s in SETTINGS for part in s.field.split(":")}
    assert fields == covered
    assert {s.section for s in SETTINGS} == set(SECTIONS)


def test_the_printed_defaults_hold_every_setting_and_read_back_unchanged(tmp_path: Path) -> None:
    printed = _printed(tmp_path)
    for s in SETTINGS:
        assert f"\n{s.key} = " in printed, s.name
    (tmp_path / "printed.toml").write_text(printed)
    assert _printed(tmp_path, config_file=tmp_path / "printed.toml") == printed
    defaults = config.load(tmp_path / "data", environ={})
    assert defaults == config.load(
        tmp_path / "data", environ={}, config_file=tmp_path / "printed.toml"
    )


def test_a_changed_configuration_prints_its_defaults_and_reads_back_unchanged(
    tmp_path: Path,
) -> None:
    given = [
        "retention.expiry_hours=1.5",
        "server.public_url=https://relay.example.org",
        'metrics.allowed=["10.0.0.0/8", "::1"]',
        "log.format=json",
        "storage.data_dir=/srv/relay data",
        'server.tls_certificate="/etc/a \\"b\\".pem"',
        "server.tls_key=/etc/k.pem",
    ]
    printed = _printed(tmp_path, listen="[::1]:9000", assignments=given)
    assert "# default: expiry_hours = 72\nexpiry_hours = 1.5\n" in printed
    assert 'listen = "[::1]:9000"' in printed
    (tmp_path / "printed.toml").write_text(printed)
    assert _printed(tmp_path, config_file=tmp_path / "printed.toml") == printed
    loaded = config.load(environ={}, config_file=tmp_path / "printed.toml")
    assert (loaded.host, loaded.port, loaded.expiry) == ("::1", 9000, 5400.0)
    assert loaded.data_dir == Path("/srv/relay data")
    assert loaded.tls_certificate == Path('/etc/a "b".pem')
    assert loaded.metrics_allowed == ("10.0.0.0/8", "::1")


@pytest.mark.parametrize(
    ("assignment", "field", "value"),
    [
        ("limits.max_open_transfers_per_site=7", "max_open_transfers_per_site", 7),
        ("retention.sweep_seconds=0.5", "sweep_interval", 0.5),
        ("retention.delivered_grace_minutes=2", "delivered_grace", 120.0),
        ("storage.data_dir=2024", "data_dir", Path("2024")),  # a path, though it reads as 2024
        ("server.trusted_proxies=10.0.0.5", "trusted_proxies", ("10.0.0.5",)),
        ('server.trusted_proxies=["10.0.0.5", "10.1.0.0/16"]', "trusted_proxies",
         ("10.0.0.5", "10.1.0.0/16")),
        ('log.format="json"', "log_format", "json"),
        ("log.level = warning", "log_level", "warning"),
        ("server.tls_certificate=", "tls_certificate", None),
    ],
)  # fmt: skip
def test_set_reads_toml_values_and_falls_back_to_text(
    tmp_path: Path, assignment: str, field: str, value: object
) -> None:
    values = config.resolve(config.Sources(tmp_path, environ={}, assignments=[assignment]))
    assert values[field] == value


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("log.formt=json", "unknown setting 'log.formt'. Did you mean log.format?"),
        ("nosuch.key=1", "unknown setting 'nosuch.key'"),
        ("expiry_hours=1", "unknown setting 'expiry_hours'"),
        ("log.format", r"give it as --set section.key=value"),
        ("log.format=xml", "--set log.format must be 'text' or 'json', not 'xml'"),
        ("retention.expiry_hours=0", "--set retention.expiry_hours must be more than 0"),
        ("retention.expiry_hours=nan", "retention.expiry_hours must be"),
        ("retention.expiry_hours=true", "retention.expiry_hours must be"),
        ("limits.max_object_bytes=1e9", "limits.max_object_bytes must be a whole number"),
        ("limits.disk_reserve_bytes=-1", "limits.disk_reserve_bytes must be"),
        ("server.listen=localhost", "--set server.listen must be HOST:PORT"),
        ("server.listen=127.0.0.1:70000", "server.listen must be HOST:PORT"),
        ("server.public_url=relay.example.org", "server.public_url must be an http"),
        ("metrics.allowed=[1, 2]", "metrics.allowed must be a list of addresses"),
        ("metrics.allowed=not-an-address", "metrics.allowed must be a list of addresses"),
        # A proxy trusted to name the client may not be every address: anyone would be anyone.
        (
            "server.trusted_proxies=0.0.0.0/0",
            "trusted_proxies must be a list of addresses or networks, not one of every address",
        ),
        ('server.trusted_proxies=["10.0.0.5", "::/0"]', "not one of every address"),
        ("server.shutdown_timeout_seconds=-1", "server.shutdown_timeout_seconds must be"),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(tmp_path: Path, assignment: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(tmp_path, environ={}, assignments=[assignment])
    assert words in refused.value.detail


def test_tls_files_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.tls_certificate and server.tls_key go"):
        config.load(tmp_path, environ={}, assignments=["server.tls_certificate=/a.pem"])


def test_each_layer_wins_over_the_one_below(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "relay.toml").write_text(
        "expiry_hours = 1\nsweep_seconds = 1\nguess_limit_global = 1\nlog_file = 'a.log'\n"
    )
    (tmp_path / "relay.toml").write_text(
        f'[storage]\ndata_dir = "{data}"\n[retention]\nsweep_seconds = 2\n'
        "[throttles]\nguess_limit_global = 2\n[log]\nfile = 'b.log'\n"
    )
    env = {"TRAUMA_RELAY_THROTTLES_GUESS_LIMIT_GLOBAL": "3", "TRAUMA_RELAY_LOG_FILE": "c.log"}
    loaded = config.load(
        environ=env,
        config_file=tmp_path / "relay.toml",
        flags={"log_file": "d.log"},
        assignments=["log.file=e.log"],
    )
    assert loaded.data_dir == data  # from --config, and its relay.toml was read
    assert (loaded.expiry, loaded.sweep_interval) == (3600.0, 2.0)
    assert loaded.guess_limit_global == 3
    assert loaded.log_file == Path("e.log")
    loaded = config.load(environ=env, config_file=tmp_path / "relay.toml", flags={"log_file": "d"})
    assert loaded.log_file == Path("d")
    assert config.load(data, environ={}, listen="[::1]:8000").host == "::1"


def test_the_data_folders_flat_relay_toml_and_older_variables_still_work(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text(
        'public_url = "https://old.example"\nmax_object_bytes = 2048\n[log]\nformat = "json"\n'
    )
    env = {"TRAUMA_RELAY_EXPIRY_HOURS": "2", "TRAUMA_RELAY_SWEEP_SECONDS": "5"}
    loaded = config.load(tmp_path, environ=env)
    assert (loaded.public_url, loaded.max_object_size, loaded.log_format) == (
        "https://old.example",
        2048,
        "json",
    )
    assert (loaded.expiry, loaded.sweep_interval) == (7200.0, 5.0)


def test_a_flat_key_in_a_config_file_says_where_it_went(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text("expiry_hours = 2\n")
    with pytest.raises(ConfigError, match=r"'expiry_hours' \(now \[retention\] expiry_hours\)"):
        config.load(tmp_path / "data", environ={}, config_file=tmp_path / "relay.toml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[retention]\nexpiry_hour = 2\n", "unknown setting retention.expiry_hour. Did you mean"),
        ("[nosuch]\nx = 1\n", "unknown setting 'nosuch'"),
        ("[log]\nformat = 'xml'\n", "relay.toml: log.format must be 'text' or 'json'"),
        ("[retention\n", "is not valid TOML"),
        ("[storage]\ndata_dir = 7\n", "storage.data_dir must be a file or folder path"),
    ],
)
def test_a_wrong_config_file_is_refused_naming_the_setting(
    tmp_path: Path, text: str, words: str
) -> None:
    (tmp_path / "relay.toml").write_text(text)
    with pytest.raises(ConfigError) as refused:
        config.load(tmp_path / "data", environ={}, config_file=tmp_path / "relay.toml")
    assert words in refused.value.detail


def test_a_missing_config_file_or_data_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml cannot be read"):
        config.load(tmp_path, environ={}, config_file=tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"No data folder: give --data DIR"):
        config.load(environ={})
    (tmp_path / "relay.toml").write_text('[storage]\ndata_dir = "/elsewhere"\n')
    with pytest.raises(ConfigError, match=r"storage.data_dir cannot be set there"):
        config.load(tmp_path, environ={})


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("relay.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.__dict__.update(extra)
    return record


def test_json_log_lines_carry_only_the_known_fields() -> None:
    line = logs.JsonFormatter().format(
        _record(method="GET", route="/healthz", status=200, duration_ms=1.5, secret="s3cret")
    )
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "method", "route", "status",
                          "duration_ms"}  # fmt: skip
    assert (entry["level"], entry["logger"], entry["message"]) == ("info", "relay.access", "GET /x")
    assert entry["time"].endswith("+00:00")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = _record(exc_info=sys.exc_info())
    assert "RuntimeError: boom" in json.loads(logs.JsonFormatter().format(failed))["exception"]


def test_a_log_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"log.file .*missing/relay.log cannot be written"):
        logs.configure("json", "info", tmp_path / "missing" / "relay.log")


def test_a_secret_setting_is_refused_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None is a secret yet; one that is (a database password, say) never goes in argv."""
    secret = dataclasses.replace(settings.BY_NAME["server.public_url"], secret=True)
    monkeypatch.setitem(settings.BY_NAME, "server.public_url", secret)
    monkeypatch.setattr(config, "BY_NAME", settings.BY_NAME)
    with pytest.raises(ConfigError) as refused:
        config.load(tmp_path, environ={}, assignments=["server.public_url=https://a.example"])
    assert "server.public_url is a secret" in refused.value.detail
    assert "https://a.example" not in refused.value.detail
    env = {"TRAUMA_RELAY_SERVER_PUBLIC_URL": "https://a.example"}
    assert config.load(tmp_path, environ=env).public_url == "https://a.example"
