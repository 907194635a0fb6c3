"""The operator's `site` and `audit` commands read the relay's storage from the same `--config`
file the relay runs with (`relay --config /etc/trauma-relay/relay.toml`, as the systemd unit
and the runbook's migration do), not only from a relay.toml in the data folder: with the
database named there alone, `site add --create` made a second, empty SQLite relay instead."""

from __future__ import annotations

import json
from pathlib import Path

from peers.postgres import PostgresServer, postgres_server  # noqa: F401 - a fixture

from e2e.harness import run_cli


def test_site_and_audit_commands_use_the_database_the_config_file_names(
    postgres_server: PostgresServer,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    data = tmp_path / "relay-data"
    config = tmp_path / "relay.toml"
    config.write_text(
        "[storage]\n"
        f'data_dir = "{data}"\n'
        f'metadata_url = "{postgres_server.url(postgres_server.new_database())}"\n'
        f'metadata_password_file = "{postgres_server.password_file}"\n'
    )
    where = ["--config", str(config), "--data", str(data)]

    add = ["site", "add", "county-trauma", "--role", "receiving", *where, "--create", "--json"]
    run_cli(add, cwd=tmp_path).ok()
    assert not (data / "relay.sqlite3").exists()  # the site is in PostgreSQL

    listed = run_cli(["site", "list", *where, "--json"], cwd=tmp_path).ok().json()
    assert [s["name"] for s in listed["sites"]] == ["county-trauma"]
    verified = run_cli(["audit", "verify", *where, "--json"], cwd=tmp_path).ok().json()
    assert (verified["intact"], verified["records"]) == (True, 1)
    exported = run_cli(["audit", "export", *where, "--format", "jsonl"], cwd=tmp_path).ok()
    assert [json.loads(line)["action"] for line in exported.stdout.splitlines()] == ["site-added"]
