"""The operator's site commands through the real CLI against a running relay: `site list`,
`site rotate`, `site disable`, `site enable`. The ER's push says plainly why it is refused."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_harness import RECEIVER, SENDER

from e2e.harness import E2ERelay, run_cli
from sending_site.synthetic import make_ct_study


@pytest.fixture
def own_relay(tmp_path: Path) -> Iterator[E2ERelay]:
    running = E2ERelay(tmp_path / "relay").start()
    yield running
    running.stop()


def _site(relay: E2ERelay, *args: str) -> dict[str, object]:
    run = run_cli(["site", *args, "--data", str(relay.data_dir), "--json"], cwd=relay.root)
    return run.ok().json()


def test_rotate_disable_and_enable_a_sending_site(own_relay: E2ERelay, tmp_path: Path) -> None:
    relay = own_relay
    study = tmp_path / "study"
    make_ct_study(study, 1)
    listed = {s["name"]: s for s in _site(relay, "list")["sites"]}
    assert set(listed) == {SENDER, RECEIVER}
    assert listed[SENDER]["disabled_at"] is None

    old = relay.sender_credential
    rotated = _site(relay, "rotate", SENDER)
    assert rotated["credential"] != old
    run = relay.push([study], workdir=tmp_path, extra=())
    assert run.returncode != 0
    assert "That site credential is not known to this relay" in run.stderr
    relay.sender_credential = str(rotated["credential"])
    relay.push([study], workdir=tmp_path).ok()

    disabled = _site(relay, "disable", SENDER)
    assert (disabled["kept"], disabled["revoked"]) == (1, [])
    plain = run_cli(["site", "list", "--data", str(relay.data_dir)], cwd=relay.root).ok()
    assert f"{SENDER}  (sending, DISABLED since" in plain.stdout
    run = relay.push([study], workdir=tmp_path, extra=("--replace",))
    assert run.returncode != 0
    assert "This site is disabled on this relay. Ask the relay's operator." in run.stderr
    assert "Traceback" not in run.stderr

    _site(relay, "enable", SENDER)
    listed = {s["name"]: s for s in _site(relay, "list")["sites"]}
    assert listed[SENDER]["disabled_at"] is None
    assert listed[SENDER]["open_transfers"] == 1
    log = relay.log_file.read_text()
    for secret in (old, relay.sender_credential):
        assert secret not in log


def test_disabling_a_trauma_center_says_its_open_transfers_wait_for_it(
    own_relay: E2ERelay, tmp_path: Path
) -> None:
    """A disabled trauma center's credential is refused, so the transfers kept for it cannot
    be redeemed until it is enabled again: the operator is not told they still can be."""
    relay = own_relay
    study = tmp_path / "study"
    make_ct_study(study, 1)
    relay.push([study], workdir=tmp_path).ok()
    run = run_cli(["site", "disable", RECEIVER, "--data", str(relay.data_dir)], cwd=relay.root)
    assert "can still be redeemed" not in run.ok().stdout
    assert "1 open transfer(s) to it kept: they can be redeemed once it is enabled" in run.stdout


def test_an_unknown_site_name_is_refused_with_a_sentence(own_relay: E2ERelay) -> None:
    run = run_cli(
        ["site", "disable", "no-such-site", "--data", str(own_relay.data_dir)], cwd=own_relay.root
    )
    assert run.returncode == 2
    assert "There is no site named 'no-such-site' on this relay" in run.stderr


def test_a_display_name_with_control_characters_is_refused(tmp_path: Path) -> None:
    """A display name is shown on the sites' terminals (`destinations`, `redeem`) and phones:
    a line break or a terminal escape in it would forge lines there."""
    add = ["site", "add", RECEIVER, "--role", "receiving", "--data", str(tmp_path / "relay")]
    for shown in ("County Trauma\nst-mary-er   FAKE", "County \x1b[2JTrauma"):
        run = run_cli([*add, "--create", "--display-name", shown], cwd=tmp_path)
        assert run.returncode == 2
        assert "A display name is one line of text" in run.message
    good = [*add, "--create", "--display-name", "County Trauma Center (Level I)"]
    run_cli(good, cwd=tmp_path).ok()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_a_database_made_by_root_belongs_to_the_relays_user(tmp_path: Path) -> None:
    """The runbook's commands run as root, and its folder belongs to the relay's user
    (`install -d -o trauma-relay`): `site add --create` there must leave a database the relay,
    running as that user, can open, not one only root can read."""
    relay_user = pwd.getpwnam("nobody")
    data = tmp_path / "relay-data"
    data.mkdir(mode=0o700)
    os.chown(data, relay_user.pw_uid, relay_user.pw_gid)
    add = ["site", "add", SENDER, "--role", "sending", "--data", str(data), "--create"]
    run_cli(add, cwd=tmp_path).ok()
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in data.iterdir()}
    assert owners == {"relay.sqlite3": (relay_user.pw_uid, relay_user.pw_gid)}
