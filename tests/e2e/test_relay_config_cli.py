"""Acceptance, at the command line: `trauma-relay relay --print-config` prints a whole
configuration that `--config` reads back unchanged and a relay starts from alone; a wrong
setting stops the start with a sentence naming it (exit 2, no traceback, nothing listening);
with `--set log.format=json`, every line the relay writes is one JSON object, with the request
fields and without any credential, code, authorization token or patient name."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from peers.ports import free_port

from e2e.harness import E2ERelay, cli_environment, run_cli
from sending_site.synthetic import make_ct_study
from transfer_codes.phone import split_link

PATIENT_NAME = "JSONLOG^PATIENT^Q"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(url: str) -> bool:
    try:
        with _OPENER.open(url + "/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_the_printed_configuration_reads_back_unchanged_and_runs_a_relay(tmp_path: Path) -> None:
    port = free_port()
    printed = run_cli(
        ["relay", "--print-config", "--data", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{port}", "--set", "log.format=json",
         "--set", "retention.expiry_hours=12", "--log-file", str(tmp_path / "relay.log")],
        cwd=tmp_path,
    ).ok()  # fmt: skip
    assert printed.stderr == ""
    (tmp_path / "relay.toml").write_text(printed.stdout)
    again = run_cli(["relay", "--config", "relay.toml", "--print-config"], cwd=tmp_path).ok()
    assert again.stdout == printed.stdout
    assert "expiry_hours = 12\n" in printed.stdout
    assert "# default: expiry_hours = 72\n" in printed.stdout

    # The file alone runs the relay: data folder, address, log format and file all from it.
    relay = subprocess.Popen(
        [sys.executable, "-m", "trauma_relay.cli", "relay", "--config", "relay.toml"],
        cwd=tmp_path,
        env=cli_environment(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(f"http://127.0.0.1:{port}"):
            assert relay.poll() is None, relay.communicate()
            assert time.monotonic() < deadline, "the relay did not answer in 30 s"
            time.sleep(0.05)
        relay.send_signal(signal.SIGTERM)
        _out, err = relay.communicate(timeout=60)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    assert relay.returncode == 0, err
    assert (tmp_path / "data" / "relay.sqlite3").exists()
    lines = (tmp_path / "relay.log").read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines][-1] == "relay stopped"
    assert err.decode().splitlines() == lines  # standard error carries the same lines


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--set", "log.format=xml"], {}, "--set log.format must be 'text' or 'json', not 'xml'"),
        (["--set", "retention.expiry_hour=3"], {}, "unknown setting 'retention.expiry_hour'"),
        (["--set", "limits.max_object_bytes=big"], {}, "limits.max_object_bytes must be"),
        (["--config", "bad.toml"], {}, "bad.toml: server.listen must be HOST:PORT"),
        (["--config", "missing.toml"], {}, "missing.toml cannot be read"),
        ([], {"TRAUMA_RELAY_EXPIRY_HOURS": "nan"}, "TRAUMA_RELAY_EXPIRY_HOURS (retention.expiry"),
        ([], {"TRAUMA_RELAY_LOG_LEVEL": "loud"}, "TRAUMA_RELAY_LOG_LEVEL (log.level) must be"),
    ],
)
def test_a_wrong_setting_stops_the_start_naming_it(
    tmp_path: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    (tmp_path / "bad.toml").write_text('[server]\nlisten = "here"\n')
    port = free_port()
    run = run_cli(
        ["relay", "--data", "data", "--listen", f"127.0.0.1:{port}", *args],
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert run.returncode == 2, run.describe()
    assert words in run.stderr
    assert "Traceback" not in run.stderr
    assert not _healthy(f"http://127.0.0.1:{port}")


def test_no_data_folder_is_a_sentence(tmp_path: Path) -> None:
    run = run_cli(["relay"], cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    assert "No data folder: give --data DIR, or data_dir in the [storage] section" in run.stderr


def test_json_logs_are_one_object_a_line_with_request_fields_and_no_secret(
    tmp_path: Path,
) -> None:
    relay = E2ERelay(tmp_path / "relay", relay_args=["--set", "log.format=json"]).start()
    try:
        make_ct_study(tmp_path / "study", 2, seed=611, patient_name=PATIENT_NAME)
        pushed, redeemed = relay.send([tmp_path / "study"], workdir=tmp_path / "sites")
        assert redeemed["instances"] == 2
    finally:
        relay.stop()
    assert relay.process.proc is not None
    assert relay.process.proc.returncode == 0

    text = relay.log_file.read_text()
    token, phone_key = split_link(str(pushed["authorization_url"]))
    code = str(pushed["code"])
    for secret in (relay.sender_credential, relay.receiver_credential, token, phone_key, code,
                   code.replace("-", ""), PATIENT_NAME, "JSONLOG"):  # fmt: skip
        assert secret not in text

    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
    requests = [e for e in entries if e["logger"] == "relay.access"]
    for entry in requests:
        assert {"method", "route", "status", "duration_ms"} <= set(entry)
        assert isinstance(entry["status"], int)
        assert isinstance(entry["duration_ms"], float)
        assert pushed["transfer_id"] not in entry["route"]  # the template, not the path
    uploads = [e for e in requests if "/objects" in e["route"]]
    assert {(e["method"], e["route"].rsplit("/", 1)[-1], e["status"]) for e in uploads} >= {
        ("POST", "objects", 200),  # small images, several to a request
        ("GET", "{index}", 200),  # a few images: each fetched alone, side by side
    }
    assert all(e["transfer_id"] == pushed["transfer_id"] for e in uploads)
    assert any(e["route"] == "/api/v1/redemptions" and e["status"] == 200 for e in requests)
    assert entries[-1]["message"] == "relay stopped"
