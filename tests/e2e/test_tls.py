"""The relay over HTTPS on this machine's network address, with a certificate from a private
authority made by `ops/make_certificates.py`: the sites push and redeem when they are given the
authority's certificate (TRAUMA_RELAY_CA_FILE), and refuse the relay without it, with a sentence
and before any credential is sent. Plain http:// to that address is refused outright."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.ports import free_port

from e2e.harness import E2ERelay, cli_environment, run_cli, trauma_relay_executable
from e2e.test_command_line import _non_loopback_address
from sending_site.synthetic import make_ct_study
from transfer_codes.phone import split_link

REPO = Path(__file__).resolve().parents[2]


class TlsRelay:
    def __init__(self, url: str, sites: E2ERelay, ca: Path, log: Path) -> None:
        self.url, self.sites, self.ca, self.log = url, sites, ca, log

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 - https to the test's relay
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, context=self.context(), timeout=30) as answer:  # noqa: S310
            result: dict[str, object] = json.loads(answer.read())
            return result


@pytest.fixture
def tls_relay(tmp_path: Path) -> Iterator[TlsRelay]:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    certificates = tmp_path / "tls"
    made = subprocess.run(  # the operator's script, as the README gives it
        [
            sys.executable,
            str(REPO / "ops/make_certificates.py"),
            "--out",
            str(certificates),
            "--name",
            "relay.test",
            "--ip",
            address,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert {p.name for p in certificates.iterdir()} == {
        "ca.pem",
        "ca-key.pem",
        "relay.pem",
        "relay-key.pem",
    }
    assert {p.stat().st_mode & 0o077 for p in certificates.iterdir()} == {0}
    sites = E2ERelay(tmp_path / "relay")  # registers the sites; its own process is not started
    port = free_port()
    url = f"https://{address}:{port}"
    log_path = tmp_path / "relay.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            trauma_relay_executable(),
            "relay",
            "--data",
            str(sites.data_dir),
            "--listen",
            f"{address}:{port}",
            "--tls-certificate",
            str(certificates / "relay.pem"),
            "--tls-key",
            str(certificates / "relay-key.pem"),
        ],
        stdout=log,
        stderr=log,
        env=cli_environment(None),
    )
    relay = TlsRelay(url, sites, certificates / "ca.pem", log_path)
    try:
        for _ in range(600):
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(  # noqa: S310
                    url + "/healthz", context=relay.context(), timeout=1
                ):
                    break
            except OSError:
                time.sleep(0.05)
        yield relay
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _api_requests(log: Path) -> int:
    return sum("/api/" in line for line in log.read_text().splitlines())


def test_push_and_redeem_over_https_with_a_private_authority(
    tls_relay: TlsRelay, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    make_ct_study(study, 2)
    trusted = {"TRAUMA_RELAY_CA_FILE": str(tls_relay.ca)}
    sites = tls_relay.sites
    push = ["push", str(study), "--relay", tls_relay.url, "--to", "county-trauma", "--yes"]

    # Without the authority's certificate the relay is refused before anything is sent.
    before = _api_requests(tls_relay.log)
    run = run_cli(
        [*push, "--state", str(tmp_path / "er"), "--json"],
        cwd=tmp_path,
        credential=sites.sender_credential,
    )
    assert run.returncode == 2, run.describe()
    assert "presented a certificate this machine does not trust" in run.stderr, run.describe()
    assert "set TRAUMA_RELAY_CA_FILE to its certificate" in run.stderr
    assert "Retrying" not in run.stderr  # no network hiccup: refused at once
    assert "Traceback" not in run.stderr
    assert _api_requests(tls_relay.log) == before

    # With it: the whole transfer over HTTPS.
    pushed = (
        run_cli(
            [*push, "--state", str(tmp_path / "er"), "--json"],
            cwd=tmp_path,
            credential=sites.sender_credential,
            env=trusted,
        )
        .ok()
        .json()
    )
    assert str(pushed["authorization_url"]).startswith(tls_relay.url + "/authorize#")
    token, _ = split_link(str(pushed["authorization_url"]))
    assert tls_relay.post("/api/v1/authorizations", {"token": token})["state"] == "authorized"
    redeemed = (
        run_cli(
            [
                "redeem",
                "--relay",
                tls_relay.url,
                "--out",
                str(tmp_path / "out"),
                "--state",
                str(tmp_path / "tc"),
                "--yes",
                "--json",
            ],
            cwd=tmp_path,
            credential=sites.receiver_credential,
            stdin=str(pushed["code"]) + "\n",
            env=trusted,
        )
        .ok()
        .json()
    )
    assert redeemed["instances"] == 2
    with urllib.request.urlopen(  # noqa: S310 - https to the test's relay
        tls_relay.url + "/healthz", context=tls_relay.context(), timeout=30
    ) as answer:
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"

    # Plain http:// to the same address is refused outright.
    plain = tls_relay.url.replace("https://", "http://")
    run = run_cli(
        [*push[:3], plain, *push[4:], "--state", str(tmp_path / "er2")],
        cwd=tmp_path,
        credential=sites.sender_credential,
        env=trusted,
    )
    assert run.returncode == 2
    assert f"The relay address {plain} is plain http:// to another machine" in run.stderr


def test_a_wrong_authority_file_is_named(tls_relay: TlsRelay, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("not a certificate\n")
    run = run_cli(
        ["destinations", "--relay", tls_relay.url],
        cwd=tmp_path,
        credential=tls_relay.sites.sender_credential,
        env={"TRAUMA_RELAY_CA_FILE": str(bogus)},
    )
    assert run.returncode == 2
    assert f"TRAUMA_RELAY_CA_FILE names {bogus}, which could not be read" in run.stderr
