"""Acceptance: the trauma center can redeem while the ER is still uploading (cut-through); the
redemption follows the upload and completes with every instance."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from peers.storage_scp import RecordingStorageSCP

from e2e.harness import (
    E2ERelay,
    assert_identical_in_scp,
    finish_cli,
    pacs_address,
    printed_ready,
    start_cli,
    stop_cli,
)
from sending_site.synthetic import make_ct_study

INSTANCES = 80
WAIT_SECONDS = 60.0


def test_redeem_started_before_the_push_finishes_gets_every_instance(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", INSTANCES, rows=512, columns=512, seed=21)
    push = start_cli(
        relay.push_args([tmp_path / "study"], state=tmp_path / "er-state"),  # plain text
        cwd=tmp_path,
        credential=relay.sender_credential,
    )
    redeem = None
    try:
        # The code and link are printed as soon as the keys are installed (Ready).
        printed = printed_ready(push)
        # Hold the upload where it is, so the redemption surely starts before it ends.
        os.kill(push.pid, signal.SIGSTOP)
        tid = printed["transfer"]
        ((closed,),) = relay.query("SELECT manifest_closed FROM transfers WHERE id = ?", tid)
        assert closed == 0, "the upload finished before the test could hold it"

        relay.authorize({"authorization_url": printed["link"]})
        redeem = start_cli(
            relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs_address(storage_scp)),
            cwd=tmp_path,
            credential=relay.receiver_credential,
            stdin=printed["code"] + "\n",
        )
        deadline = time.monotonic() + WAIT_SECONDS
        while relay.audit_seq(tid, "redeem-attempt", "success") is None:
            assert redeem.poll() is None, finish_cli(redeem).describe()
            assert time.monotonic() < deadline, "the redemption did not start"
            time.sleep(0.02)
        time.sleep(0.5)  # let it take whatever is already complete, then wait for more
        assert redeem.poll() is None, "redeem finished (or failed) while the upload was held"

        os.kill(push.pid, signal.SIGCONT)
        pushed = finish_cli(push).ok()
        redeemed = finish_cli(redeem).ok().json()
    finally:
        stop_cli(push)
        if redeem is not None:
            stop_cli(redeem)

    assert "Uploaded 80 images" in pushed.stdout
    assert redeemed["instances"] == INSTANCES
    assert redeemed["transfer_id"] == tid
    redeemed_at = relay.audit_seq(tid, "redeem-attempt", "success")
    closed_at = relay.audit_seq(tid, "upload-closed", "success")
    assert redeemed_at is not None
    assert closed_at is not None
    assert redeemed_at < closed_at  # redeemed while the upload was still open
    assert_identical_in_scp(storage_scp, files)
