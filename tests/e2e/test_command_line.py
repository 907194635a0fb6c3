"""Acceptance: what the command line says when it is given something wrong. Every case ends
with a sentence on stderr (with `--json`: one JSON object on stdout) and exit status 2, never a
Python traceback, and nothing is sent, spent or created on the way."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.ports import free_port
from relay_harness import RECEIVER, SENDER

from e2e.harness import CliRun, E2ERelay, cli_environment, run_cli, trauma_relay_executable
from sending_site.synthetic import make_ct_study

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _error(run: CliRun) -> dict[str, str]:
    """The one JSON error object a failed `--json` run printed: all of stdout, no traceback,
    and the same sentence on stderr."""
    assert run.returncode == 2, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.describe()
    body = json.loads(lines[0])
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    error: dict[str, str] = body["error"]
    assert error["message"] in run.message, run.describe()  # still said on stderr too
    return error


def _refused(run: CliRun, *phrases: str) -> CliRun:
    """A failed plain run: exit 2, the phrases on stderr, nothing on stdout."""
    run.failed()
    assert run.returncode == 2, run.describe()
    for phrase in phrases:
        assert phrase in run.message, run.describe()
    return run


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study") / "study"
    make_ct_study(folder, 2)
    return folder


# -- the relay's address -----------------------------------------------------------------------

BAD_ADDRESSES = [
    ("127.0.0.1:{port}", "does not start with https://"),
    ("ftp://127.0.0.1:{port}", "must start with https://"),
    ("http://127.0.0.1:99999", "cannot be read"),
    ("http://[::1", "cannot be read"),
    ("https://", "the host is missing"),
    ("https://er:secret@127.0.0.1:{port}", "must not hold a user name or password"),
    ("http://127.0.0.1:{port}/api/v1", "must not hold a path"),
    ("http://127.0.0.1:{port}/?site=er", "must not hold anything after ? or #"),
]


@pytest.mark.parametrize(("address", "why"), BAD_ADDRESSES)
def test_push_refuses_a_relay_address_it_cannot_use(
    relay: E2ERelay, study: Path, tmp_path: Path, address: str, why: str
) -> None:
    given = address.format(port=relay.process.port)
    before = relay.transfer_count()
    run = _refused(
        relay.push([study], workdir=tmp_path, extra=(), relay_url=given),
        f"{given!r} is not a relay address",
        why,
        "e.g. https://relay.example",
    )
    as_json = relay.push([study], workdir=tmp_path, relay_url=given)
    assert _error(as_json) == {
        "code": "bad-relay-address",
        "message": run.message.removeprefix("trauma-relay: "),
    }
    assert relay.transfer_count() == before
    assert not (tmp_path / "er-state").exists()
    assert list(tmp_path.glob("*.png")) == []


@pytest.mark.parametrize(("address", "why"), BAD_ADDRESSES[:2])
def test_redeem_refuses_a_relay_address_before_it_asks_for_the_code(
    relay: E2ERelay, study: Path, tmp_path: Path, address: str, why: str
) -> None:
    pushed = relay.push([study], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    args = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "inbox")
    args[args.index(relay.url)] = address.format(port=relay.process.port)
    for extra in ([], ["--json"]):
        plain = [a for a in args if a != "--json"]
        run = run_cli(
            [*plain, *extra],
            cwd=tmp_path,
            credential=relay.receiver_credential,
            stdin=pushed["code"] + "\n",
        )
        if extra:
            assert _error(run)["code"] == "bad-relay-address"
        else:
            _refused(run, "is not a relay address", why)
    # The code was not spent: it still works.
    relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok()


def test_reissue_refuses_a_relay_address_before_it_changes_the_code(
    relay: E2ERelay, study: Path, tmp_path: Path
) -> None:
    pushed = relay.push([study], workdir=tmp_path).ok().json()
    journal = tmp_path / "er-state" / "sending" / f"{pushed['transfer_id']}.json"
    kept = journal.read_bytes()
    args = ["reissue", pushed["transfer_id"], "--state", str(tmp_path / "er-state")]
    run = run_cli(
        [*args, "--relay", f"127.0.0.1:{relay.process.port}"],
        cwd=tmp_path,
        credential=relay.sender_credential,
    )
    _refused(run, "is not a relay address")
    assert journal.read_bytes() == kept


# -- credentials, state folder, output files ----------------------------------------------------


def test_a_missing_credential_file_is_named(relay: E2ERelay, study: Path, tmp_path: Path) -> None:
    missing = tmp_path / "er.credential"
    args = relay.push_args([study], state=tmp_path / "er-state")
    run = run_cli([*args, "--credential-file", str(missing)], cwd=tmp_path)
    _refused(run, f"The credential file {missing} could not be read (No such file or directory)")
    run = run_cli([*args, "--credential-file", str(missing), "--json"], cwd=tmp_path)
    assert _error(run)["code"] == "credential-unreadable"
    run = run_cli(args, cwd=tmp_path)  # and neither a file nor TRAUMA_RELAY_CREDENTIAL
    _refused(run, "No site credential: set TRAUMA_RELAY_CREDENTIAL or pass --credential-file")


def test_a_credential_file_of_two_lines_is_refused_with_a_sentence(
    relay: E2ERelay, study: Path, tmp_path: Path
) -> None:
    pasted = tmp_path / "er.credential"
    pasted.write_text(f"St. Mary's ED\n{relay.sender_credential}\n")
    pasted.chmod(0o600)
    args = relay.push_args([study], state=tmp_path / "er-state")
    run = run_cli([*args, "--credential-file", str(pasted)], cwd=tmp_path)
    _refused(run, f"The credential file {pasted} holds more than the credential")
    assert relay.sender_credential not in run.stdout + run.stderr
    run = run_cli([*args, "--credential-file", str(pasted), "--json"], cwd=tmp_path)
    assert _error(run)["code"] == "credential-malformed"


@pytest.mark.parametrize("command", ["push", "redeem"])
def test_a_state_folder_that_is_a_file_is_named(
    relay: E2ERelay, study: Path, tmp_path: Path, command: str
) -> None:
    state = tmp_path / "state"
    state.write_text("not a folder\n")
    before = relay.transfer_count()
    if command == "push":
        run = relay.push([study], workdir=tmp_path, state=state, extra=())
    else:
        pushed = relay.push([study], workdir=tmp_path).ok().json()
        relay.authorize(pushed)
        before = relay.transfer_count()
        args = relay.redeem_args(state=state, out=tmp_path / "inbox")
        args.remove("--json")
        run = run_cli(
            args, cwd=tmp_path, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
        )
    _refused(run, f"The state folder {state} cannot be used", "--state")
    assert relay.transfer_count() == before


@pytest.mark.parametrize("option", ["--qr", "--sheet", "--link-qr"])
def test_an_output_file_in_a_missing_folder_is_refused_before_anything_is_sent(
    relay: E2ERelay, study: Path, tmp_path: Path, option: str
) -> None:
    target = tmp_path / "no-such-folder" / "out.file"
    before = relay.transfer_count()
    run = relay.push([study], workdir=tmp_path, extra=(option, str(target)))
    _refused(run, f"{option} {target}: the folder {target.parent} does not exist", "nothing")
    assert relay.transfer_count() == before
    assert not (tmp_path / "er-state" / "sending").exists()


# -- redeem's PACS address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--pacs", "PACS@127.0.0.1:99999"], "99999 is not a port"),
        (["--pacs", "PACS@127.0.0.1:104", "--calling-aet", "A" * 17], "is not an AE title"),
    ],
)
def test_redeem_refuses_a_pacs_address_before_the_code_is_spent(
    relay: E2ERelay, study: Path, tmp_path: Path, options: list[str], says: str
) -> None:
    pushed = relay.push([study], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    args = ["redeem", "--relay", relay.url, *options, "--state", str(tmp_path / "tc-state")]
    run = run_cli(
        args, cwd=tmp_path, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
    )
    _refused(run, says, "Nothing was done")
    relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok()


# -- the demo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_demo_needs_a_number_of_images(tmp_path: Path, count: str) -> None:
    run = _refused(
        run_cli(["demo", "--instances", count], cwd=tmp_path),
        "argument --instances: give a whole number of images from 1 to 5000",
        repr(count),
    )
    assert run.stdout == ""
    assert "usage: trauma-relay demo" in run.stderr
    assert list(tmp_path.iterdir()) == []


# -- --json errors -----------------------------------------------------------------------------


def test_json_errors_are_one_object_with_the_same_exit_status(
    relay: E2ERelay, study: Path, tmp_path: Path
) -> None:
    unknown_destination = relay.push_args([study], state=tmp_path / "er-state")
    unknown_destination[unknown_destination.index(RECEIVER)] = "no-such-trauma-center"
    cases = {
        "usage": ["push", str(study), "--relay", relay.url, "--to", RECEIVER, "--bogus"],
        "site-exists": ["site", "add", SENDER, "--role", "sending", "--data", str(relay.data_dir)],
        "unknown-destination": unknown_destination,
        "code-length-error": [
            *("redeem", "--relay", relay.url, "--out", str(tmp_path / "in"), "--yes"),
        ],
    }
    credentials = {
        "unknown-destination": relay.sender_credential,
        "code-length-error": relay.receiver_credential,
    }
    for code, args in cases.items():
        plain = run_cli(args, cwd=tmp_path, credential=credentials.get(code), stdin="1234\n")
        as_json = run_cli(
            [*args, "--json"], cwd=tmp_path, credential=credentials.get(code), stdin="1234\n"
        )
        plain.failed()
        error = _error(as_json)
        assert as_json.returncode == plain.returncode == 2
        assert error["code"] == code, (code, error)
        assert error["message"] in plain.message, (error, plain.describe())


# -- site add and the relay's data folder --------------------------------------------------------


def test_site_add_needs_a_relay_data_folder_or_create(relay: E2ERelay, tmp_path: Path) -> None:
    missing = tmp_path / "relay-dta"  # a typo of the relay's folder
    add = ["site", "add", "new-er", "--role", "sending", "--data"]
    _refused(
        run_cli([*add, str(missing)], cwd=tmp_path),
        f"The folder {missing} does not exist",
        "add --create",
    )
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(run_cli([*add, str(empty)], cwd=tmp_path), "holds no relay database")
    assert list(empty.iterdir()) == []
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    _refused(run_cli([*add, str(a_file), "--create"], cwd=tmp_path), "is a file")

    created = run_cli([*add, str(missing), "--create", "--json"], cwd=tmp_path).ok().json()
    assert created["name"] == "new-er"
    assert (missing / "relay.sqlite3").is_file()
    again = run_cli(
        ["site", "add", "new-tc", "--role", "receiving", "--data", str(missing)], cwd=tmp_path
    )
    again.ok()
    # Where the relay has run, no --create is needed.
    run_cli([*add, str(relay.data_dir)], cwd=tmp_path).ok()


def test_relay_refuses_a_taken_port_and_a_file_for_data(relay: E2ERelay, tmp_path: Path) -> None:
    taken = f"127.0.0.1:{relay.process.port}"
    run = run_cli(["relay", "--data", str(tmp_path / "data"), "--listen", taken], cwd=tmp_path)
    _refused(run, f"could not listen on {taken} (Address already in use)", "--listen")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    run = run_cli(["relay", "--data", str(a_file), "--listen", "127.0.0.1:0"], cwd=tmp_path)
    _refused(run, f"{a_file} is a file, not the relay's data folder")


# -- plain http to another machine -----------------------------------------------------------------


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the one its default route uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


@pytest.fixture
def relay_on_the_network(tmp_path: Path) -> Iterator[tuple[str, E2ERelay]]:
    """A relay listening on a non-loopback address of this machine (the sites of `E2ERelay`
    registered in its data folder), as `http://ADDRESS:PORT`."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    sites = E2ERelay(tmp_path / "relay")  # registers the sites; its own process is not started
    url = f"http://{address}:{free_port()}"
    host_port = url.removeprefix("http://")
    log = (tmp_path / "relay.log").open("wb")
    proc = subprocess.Popen(
        [trauma_relay_executable(), "relay", "--data", str(sites.data_dir), "--listen", host_port],
        stdout=log,
        stderr=log,
        env=cli_environment(None),
    )
    try:
        for _ in range(600):
            assert proc.poll() is None, (tmp_path / "relay.log").read_text()
            try:
                with _OPENER.open(url + "/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield url, sites
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _api_requests(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "/api/" in line]


def test_push_over_plain_http_to_another_machine_is_refused(
    relay_on_the_network: tuple[str, E2ERelay], study: Path, tmp_path: Path
) -> None:
    url, sites = relay_on_the_network
    requests_before = _api_requests(tmp_path / "relay.log")
    run = sites.push([study], workdir=tmp_path, relay_url=url)
    _refused(run, f"The relay address {url} is plain http:// to another machine")
    assert "credential would travel over the network unencrypted" in run.message
    assert "Give the relay's https:// address" in run.message
    assert _api_requests(tmp_path / "relay.log") == requests_before  # nothing reached it
    run = sites.push([study], workdir=tmp_path, relay_url=url, extra=("--json",))
    assert _error(run)["code"] == "cleartext-relay"


def test_a_relay_serving_plain_http_to_the_network_warns_its_operator(
    relay_on_the_network: tuple[str, E2ERelay], relay: E2ERelay, tmp_path: Path
) -> None:
    """Started on an address other machines reach, without TLS or a TLS proxy named in front
    of it, the relay says so in its log with what to set; on loopback it does not."""
    url, _ = relay_on_the_network
    logged = (tmp_path / "relay.log").read_text()
    assert f"The relay serves plain HTTP on {url.removeprefix('http://')}" in logged
    assert "Set tls_certificate and tls_key, or put it behind a TLS proxy" in logged
    assert "plain HTTP" not in relay.log_file.read_text()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_push_over_plain_http_on_this_machine_is_fine(
    relay: E2ERelay, study: Path, tmp_path: Path, host: str
) -> None:
    url = f"http://{host}:{relay.process.port}"
    run = relay.push([study], workdir=tmp_path, relay_url=url).ok()
    assert "Warning" not in run.stderr
