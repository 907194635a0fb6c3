"""Acceptance: the upload starts at once and goes on while images are still arriving. DCMTK
storescu sends part of a study to the agent's DICOM inbox; `trauma-relay push --from-inbox`
starts and prints the code; `trauma-relay redeem` starts and waits; storescu sends the rest;
the push closes the manifest once the study is complete (every series the hospital PACS holds
has arrived, and none has come for the stable age), and the trauma center's Orthanc receives
every instance exactly once."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from inbox_harness import make_multi_series_study, running_inbox
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer

from e2e.harness import (
    E2ERelay,
    assert_identical_in_orthanc,
    finish_cli,
    pacs_address,
    run_cli,
    start_cli,
    stop_cli,
)

pytestmark = pytest.mark.peers

WAIT_SECONDS = 120.0  # generous: for a condition, never asserted as a duration


def _audit_seq(relay: E2ERelay, transfer_id: str, action: str) -> int | None:
    rows = relay.query(
        "SELECT min(seq) FROM audit WHERE transfer_id = ? AND action = ? AND outcome = 'success'",
        transfer_id,
        action,
    )
    return None if rows[0][0] is None else int(rows[0][0])


def _printed(push: subprocess.Popen[str]) -> dict[str, str]:
    """The transfer id, code and authorization link the push prints once its keys are in."""
    assert push.stdout is not None
    printed: dict[str, str] = {}
    while not {"code", "link", "transfer"} <= set(printed):
        line = push.stdout.readline()
        assert line, "push ended before printing its code"
        for key, pattern in (
            ("transfer", r"transfer (\w{24}) to"),
            ("code", r"Code:\s+(\S+)"),
            ("link", r"authorization link:\s+(\S+)"),
        ):
            if match := re.search(pattern, line):
                printed[key] = match.group(1)
    return printed


def _manifest_entries(relay: E2ERelay, transfer_id: str) -> int:
    """How many images the relay holds whole with their manifest entries."""
    rows = relay.query(
        "SELECT count(*) FROM manifest_records WHERE transfer_id = ? AND seq > 0 AND final = 0",
        transfer_id,
    )
    return int(rows[0][0])


def test_a_study_still_arriving_is_followed_and_redeemed_whole(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=7272)
    thin, *rest = study.values()  # 12 thin slices first, then 5 + 3 more
    sent = [path for files in study.values() for path in files]
    study_uid = str(pydicom.dcmread(sent[0], stop_before_pixels=True).StudyInstanceUID)
    hospital = orthanc_factory()  # the ER's PACS, which holds the whole study
    assert storescu(hospital.dicom_port, [tmp_path / "study"]).returncode == 0
    trauma_center = orthanc_factory()
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    push = redeem = None
    with running_inbox(tmp_path / "agent") as agent:
        try:
            first = storescu(agent.port, thin, called_ae_title=agent.ae_title)
            assert first.returncode == 0, first.stderr
            follow = ["--from-inbox", str(agent.spool), "--study", study_uid]
            follow += ["--inbox-pacs", pacs_address(hospital), "--stable-after", "1"]
            push = start_cli(
                relay.push_args([], state=tmp_path / "er" / "state", extra=follow),
                cwd=tmp_path / "er",
                credential=relay.sender_credential,
            )
            printed = _printed(push)
            tid = printed["transfer"]
            relay.authorize({"authorization_url": printed["link"]})
            redeem = start_cli(
                relay.redeem_args(
                    state=tmp_path / "tc" / "state", pacs=pacs_address(trauma_center)
                ),
                cwd=tmp_path / "tc",
                credential=relay.receiver_credential,
                stdin=printed["code"] + "\n",
            )
            deadline = time.monotonic() + WAIT_SECONDS
            while _audit_seq(relay, tid, "redeem-attempt") is None or _manifest_entries(
                relay, tid
            ) < len(thin):
                assert redeem.poll() is None, finish_cli(redeem).describe()
                assert push.poll() is None, finish_cli(push).describe()
                assert time.monotonic() < deadline, "the redemption or the upload did not start"
                time.sleep(0.1)
            # The hospital PACS holds two series more: the manifest stays open, and the trauma
            # center waits, however long that takes.
            ((closed,),) = relay.query("SELECT manifest_closed FROM transfers WHERE id = ?", tid)
            assert closed == 0
            assert redeem.poll() is None, finish_cli(redeem).describe()

            second = storescu(
                agent.port, [p for files in rest for p in files], called_ae_title=agent.ae_title
            )
            assert second.returncode == 0, second.stderr
            pushed = finish_cli(push).ok()
            redeemed = finish_cli(redeem).ok().json()
        finally:
            for proc in (push, redeem):
                if proc is not None:
                    stop_cli(proc)

    assert f"Uploaded {len(sent)} images" in pushed.stdout
    assert "Images still arriving are sent too" in pushed.stdout
    assert redeemed["instances"] == len(sent)
    redeemed_at = _audit_seq(relay, tid, "redeem-attempt")
    closed_at = _audit_seq(relay, tid, "upload-closed")
    assert redeemed_at is not None
    assert closed_at is not None
    assert redeemed_at < closed_at  # redeemed while the study was still arriving
    assert_identical_in_orthanc(trauma_center, sent)  # every instance, exactly once


def test_a_followed_push_killed_mid_study_resumes_with_the_same_code(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=7373)
    thin, *rest = study.values()
    sent = [path for files in study.values() for path in files]
    study_uid = str(pydicom.dcmread(sent[0], stop_before_pixels=True).StudyInstanceUID)
    hospital = orthanc_factory()
    assert storescu(hospital.dicom_port, [tmp_path / "study"]).returncode == 0
    trauma_center = orthanc_factory()
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    with running_inbox(tmp_path / "agent") as agent:
        first = storescu(agent.port, thin, called_ae_title=agent.ae_title)
        assert first.returncode == 0, first.stderr
        follow = ["--from-inbox", str(agent.spool), "--study", study_uid]
        follow += ["--inbox-pacs", pacs_address(hospital), "--stable-after", "1"]
        args = relay.push_args([], state=tmp_path / "er" / "state", extra=follow)
        push = start_cli(args, cwd=tmp_path / "er", credential=relay.sender_credential)
        try:
            printed = _printed(push)
            tid = printed["transfer"]
            deadline = time.monotonic() + WAIT_SECONDS
            while _manifest_entries(relay, tid) < len(thin):
                assert push.poll() is None, finish_cli(push).describe()
                assert time.monotonic() < deadline, "the upload did not start"
                time.sleep(0.1)
            push.kill()  # SIGKILL, mid-study: the PACS holds two series more
            push.wait()
        finally:
            stop_cli(push)
        second = storescu(
            agent.port, [p for files in rest for p in files], called_ae_title=agent.ae_title
        )
        assert second.returncode == 0, second.stderr
        again = run_cli(args, cwd=tmp_path / "er", credential=relay.sender_credential).ok()
    assert f"Resuming transfer {tid}" in again.stdout
    assert f"Code:        {printed['code']}" in again.stdout
    assert f"Uploaded {len(sent)} images" in again.stdout
    assert relay.query("SELECT count(*) FROM objects WHERE transfer_id = ?", tid) == [(len(sent),)]
    relay.authorize({"authorization_url": printed["link"]})
    redeemed = (
        relay.redeem(printed["code"], workdir=tmp_path / "tc", pacs=pacs_address(trauma_center))
        .ok()
        .json()
    )
    assert redeemed["instances"] == len(sent)
    assert_identical_in_orthanc(trauma_center, sent)


def test_a_study_no_longer_followed_before_it_is_complete_is_not_taken_for_whole(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=7474)
    thin = next(iter(study.values()))
    sent = [path for files in study.values() for path in files]
    study_uid = str(pydicom.dcmread(sent[0], stop_before_pixels=True).StudyInstanceUID)
    hospital = orthanc_factory()
    assert storescu(hospital.dicom_port, [tmp_path / "study"]).returncode == 0
    trauma_center = orthanc_factory()
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    with running_inbox(tmp_path / "agent") as agent:
        first = storescu(agent.port, thin, called_ae_title=agent.ae_title)
        assert first.returncode == 0, first.stderr
        # The PACS holds two series more, which never come: following stops.
        follow = ["--from-inbox", str(agent.spool), "--study", study_uid, "--json"]
        follow += ["--inbox-pacs", pacs_address(hospital), "--stable-after", "1"]
        follow += ["--follow-for", "2"]
        pushed = relay.push([], workdir=tmp_path / "er", extra=follow).ok().json()
    assert pushed["incomplete"] is True
    assert pushed["instances"] == len(thin)
    relay.authorize(pushed)
    refused = relay.redeem(
        pushed["code"], workdir=tmp_path / "tc", pacs=pacs_address(trauma_center)
    ).failed()
    assert (
        f"The sending hospital stopped sending this study before all of it had arrived (only "
        f"{len(thin)} images came), so it is incomplete. Nothing was stored." in refused.message
    )
    assert "continue with" not in refused.message  # running it again would not help
    assert trauma_center.instances() == []
