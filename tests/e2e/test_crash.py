"""Acceptance: SIGKILL the relay process in the middle of an upload and restart it; running the
same push command again resumes the transfer, no chunk the relay had acknowledged is lost, and
the study arrives intact. The first test runs with the objects in the data directory and in an
S3 bucket (a local moto server)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.storage_scp import RecordingStorageSCP

from e2e.harness import (
    E2ERelay,
    assert_identical_in_scp,
    finish_cli,
    pacs_address,
    run_cli,
    start_cli,
    uploaded_objects,
)
from sending_site.synthetic import make_ct_study

# 96 slices of 512 x 512 (48 MiB): a few seconds of upload, so the kill lands mid-way.
INSTANCES = 96
KILL_AFTER_COMPLETE = 6  # objects the relay has acknowledged before we kill it
WAIT_SECONDS = 60.0

Holding = dict[int, tuple[int, int, int | None, str | None]]  # idx: offset, complete, size, sha


def _holdings(relay: E2ERelay, transfer_id: str) -> Holding:
    rows = relay.query(
        "SELECT idx, durable_offset, complete, size, sha256 FROM objects WHERE transfer_id = ?",
        transfer_id,
    )
    return {int(i): (int(o), int(c), s, h) for i, o, c, s, h in rows}


@pytest.fixture(params=["files", "s3"])
def crash_relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[E2ERelay]:
    bucket = request.getfixturevalue("s3_bucket") if request.param == "s3" else None
    running = E2ERelay(tmp_path / "relay", bucket).start()
    try:
        yield running
    finally:
        running.stop()


def _wait_until_objects_complete(relay: E2ERelay, push: subprocess.Popen[str]) -> str:
    """Poll the relay's database until KILL_AFTER_COMPLETE objects of the (only) transfer are
    complete, while the push still runs; returns the transfer id."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        rows = relay.query("SELECT id FROM transfers")
        if rows:
            (transfer_id,) = rows[0]
            held = _holdings(relay, transfer_id)
            if sum(c for _, c, _, _ in held.values()) >= KILL_AFTER_COMPLETE:
                return str(transfer_id)
        assert push.poll() is None, "the push ended before the relay could be killed"
        assert time.monotonic() < deadline, "the upload did not start"
        time.sleep(0.005)


def test_push_resumes_after_the_relay_is_killed_mid_upload(
    crash_relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    relay = crash_relay
    files = make_ct_study(tmp_path / "study", INSTANCES, rows=512, columns=512, seed=11)
    push_args = relay.push_args([tmp_path / "study"], state=tmp_path / "er-state", extra=["--json"])

    push = start_cli(push_args, cwd=tmp_path, credential=relay.sender_credential)
    try:
        transfer_id = _wait_until_objects_complete(relay, push)
        acknowledged = _holdings(relay, transfer_id)  # all of this was acknowledged durable
        relay.process.kill()
    finally:
        interrupted = finish_cli(push)

    interrupted.failed()
    assert "could not be reached" in interrupted.message
    assert "run the same command again" in interrupted.message
    assert "It continues where this one stopped" in interrupted.message
    assert "Retrying in 1 s." in interrupted.stderr  # the waits are shown, not silent
    complete_before = {i for i, (_, c, _, _) in acknowledged.items() if c}
    assert len(complete_before) < INSTANCES, "the kill came after the upload"

    log_mark = relay.log_file.stat().st_size
    relay.start()

    after = _holdings(relay, transfer_id)
    for index, (offset, complete, size, sha) in acknowledged.items():
        stored = relay.stored_object(transfer_id, index)
        if complete:
            assert after[index] == (offset, 1, size, sha), f"object {index} lost completion"
            assert len(stored) == size
            assert hashlib.sha256(stored).hexdigest() == sha, f"object {index} changed on disk"
        else:
            assert after[index][0] >= offset, f"object {index} lost acknowledged bytes"
            assert len(stored) >= offset

    resumed_run = run_cli(push_args, cwd=tmp_path, credential=relay.sender_credential).ok()
    resumed = resumed_run.json()
    assert resumed["resumed"] is True
    assert resumed["transfer_id"] == transfer_id
    assert resumed["instances"] == INSTANCES

    # The resumed push sent only what the relay did not hold.
    log = relay.log_file.read_bytes()[log_mark:].decode(errors="replace")
    patched = uploaded_objects(log, transfer_id)
    assert patched, "the resumed push uploaded nothing"
    assert not patched & complete_before

    relay.authorize(resumed)
    redeemed = relay.redeem(resumed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp))
    assert redeemed.ok().json()["instances"] == INSTANCES
    assert_identical_in_scp(storage_scp, files)


def test_the_same_push_finishes_when_the_relay_restarts_mid_upload(
    fresh_relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    """The relay is SIGKILLed mid-upload and comes back a moment later: the push that was
    running waits, asks the relay what it holds and finishes, without being run again."""
    relay = fresh_relay
    files = make_ct_study(tmp_path / "study", INSTANCES, rows=512, columns=512, seed=12)
    push_args = relay.push_args([tmp_path / "study"], state=tmp_path / "er-state", extra=["--json"])

    push = start_cli(push_args, cwd=tmp_path, credential=relay.sender_credential)
    try:
        transfer_id = _wait_until_objects_complete(relay, push)
        relay.process.kill()
        complete_before = {i for i, (_, c, _, _) in _holdings(relay, transfer_id).items() if c}
        time.sleep(1.0)  # the push meets a relay that is down, and waits
        assert push.poll() is None, "the push gave up while the relay was down"
        relay.start()
    finally:
        finished = finish_cli(push)

    pushed = finished.ok().json()
    assert len(complete_before) < INSTANCES, "the kill came after the upload"
    assert (pushed["transfer_id"], pushed["resumed"]) == (transfer_id, False)
    assert pushed["instances"] == INSTANCES
    assert relay.transfer_count() == 1
    relay.authorize(pushed)
    redeemed = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp))
    assert redeemed.ok().json()["instances"] == INSTANCES
    assert_identical_in_scp(storage_scp, files)
