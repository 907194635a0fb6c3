"""Acceptance: the upload starts at once and goes on while images are still arriving. DCMTK
storescu sends part of a study to the agent's DICOM inbox; `trauma-relay push --from-inbox`
starts and prints the code; `trauma-relay redeem` starts and waits; storescu sends the rest;
the push closes the manifest once the study is complete (every series the hospital PACS holds
has arrived, and none has come for the stable age), and the trauma center's Orthanc receives
every instance exactly once. A push killed mid-study resumes with the same code; a study no
longer followed before it is complete reaches the trauma center marked incomplete, and is not
stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from inbox_harness import InboxProcess, make_multi_series_study, running_inbox
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer

from e2e.harness import (
    E2ERelay,
    assert_identical_in_orthanc,
    finish_cli,
    pacs_address,
    printed_ready,
    run_cli,
    start_cli,
    stop_cli,
)

pytestmark = pytest.mark.peers

WAIT_SECONDS = 120.0  # generous: for a condition, never asserted as a duration


@dataclass
class Arranged:
    """A three-series study the hospital PACS holds whole, the trauma center's empty PACS, and
    the work folders of both sites."""

    thin: list[Path]  # 12 thin slices, sent first
    rest: list[Path]  # 5 + 3 more, sent later (or never)
    study_uid: str
    hospital: OrthancServer
    trauma_center: OrthancServer
    er: Path
    tc: Path

    @property
    def sent(self) -> list[Path]:
        return self.thin + self.rest

    def follow(self, agent: InboxProcess, *extra: str) -> list[str]:
        """`push --from-inbox` arguments following the study, counted against the PACS."""
        return [
            "--from-inbox",
            str(agent.spool),
            "--study",
            self.study_uid,
            "--inbox-pacs",
            pacs_address(self.hospital),
            "--stable-after",
            "1",
            *extra,
        ]

    def send(self, agent: InboxProcess, files: list[Path]) -> None:
        run = storescu(agent.port, files, called_ae_title=agent.ae_title)
        assert run.returncode == 0, run.stderr


def _arranged(tmp_path: Path, orthanc_factory: Callable[..., OrthancServer], seed: int) -> Arranged:
    thin, *rest = make_multi_series_study(tmp_path / "study", seed=seed).values()
    study_uid = str(pydicom.dcmread(thin[0], stop_before_pixels=True).StudyInstanceUID)
    hospital = orthanc_factory()  # the ER's PACS, which holds the whole study
    assert storescu(hospital.dicom_port, [tmp_path / "study"]).returncode == 0
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    return Arranged(
        thin,
        [p for files in rest for p in files],
        study_uid,
        hospital,
        orthanc_factory(),
        tmp_path / "er",
        tmp_path / "tc",
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[InboxProcess]:
    """The agent's DICOM inbox, running."""
    with running_inbox(tmp_path / "agent") as running:
        yield running


def _manifest_entries(relay: E2ERelay, transfer_id: str) -> int:
    """How many images the relay holds whole with their manifest entries."""
    rows = relay.query(
        "SELECT count(*) FROM manifest_records WHERE transfer_id = ? AND seq > 0 AND final = 0",
        transfer_id,
    )
    return int(rows[0][0])


def test_a_study_still_arriving_is_followed_and_redeemed_whole(
    relay: E2ERelay,
    orthanc_factory: Callable[..., OrthancServer],
    agent: InboxProcess,
    tmp_path: Path,
) -> None:
    it = _arranged(tmp_path, orthanc_factory, seed=7272)
    it.send(agent, it.thin)
    push = start_cli(
        relay.push_args([], state=it.er / "state", extra=it.follow(agent)),
        cwd=it.er,
        credential=relay.sender_credential,
    )
    redeem = None
    try:
        printed = printed_ready(push)
        tid = printed["transfer"]
        relay.authorize({"authorization_url": printed["link"]})
        redeem = start_cli(
            relay.redeem_args(state=it.tc / "state", pacs=pacs_address(it.trauma_center)),
            cwd=it.tc,
            credential=relay.receiver_credential,
            stdin=printed["code"] + "\n",
        )
        deadline = time.monotonic() + WAIT_SECONDS
        while relay.audit_seq(tid, "redeem-attempt") is None or _manifest_entries(relay, tid) < len(
            it.thin
        ):
            assert redeem.poll() is None, finish_cli(redeem).describe()
            assert push.poll() is None, finish_cli(push).describe()
            assert time.monotonic() < deadline, "the redemption or the upload did not start"
            time.sleep(0.1)
        # The hospital PACS holds two series more: the manifest stays open, and the trauma
        # center waits, however long that takes.
        ((closed,),) = relay.query("SELECT manifest_closed FROM transfers WHERE id = ?", tid)
        assert closed == 0
        assert redeem.poll() is None, finish_cli(redeem).describe()

        it.send(agent, it.rest)
        pushed = finish_cli(push).ok()
        redeemed = finish_cli(redeem).ok().json()
    finally:
        for proc in (push, redeem):
            if proc is not None:
                stop_cli(proc)

    assert f"Uploaded {len(it.sent)} images" in pushed.stdout
    assert redeemed["instances"] == len(it.sent)
    redeemed_at = relay.audit_seq(tid, "redeem-attempt")
    closed_at = relay.audit_seq(tid, "upload-closed")
    assert redeemed_at is not None
    assert closed_at is not None
    assert redeemed_at < closed_at  # redeemed while the study was still arriving
    assert_identical_in_orthanc(it.trauma_center, it.sent)  # every instance, exactly once


def test_a_followed_push_killed_mid_study_resumes_with_the_same_code(
    relay: E2ERelay,
    orthanc_factory: Callable[..., OrthancServer],
    agent: InboxProcess,
    tmp_path: Path,
) -> None:
    it = _arranged(tmp_path, orthanc_factory, seed=7373)
    it.send(agent, it.thin)
    args = relay.push_args([], state=it.er / "state", extra=it.follow(agent))
    push = start_cli(args, cwd=it.er, credential=relay.sender_credential)
    try:
        printed = printed_ready(push)
        tid = printed["transfer"]
        deadline = time.monotonic() + WAIT_SECONDS
        while _manifest_entries(relay, tid) < len(it.thin):
            assert push.poll() is None, finish_cli(push).describe()
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.1)
        push.kill()  # SIGKILL, mid-study: the PACS holds two series more
        push.wait()
    finally:
        stop_cli(push)
    it.send(agent, it.rest)
    again = run_cli(args, cwd=it.er, credential=relay.sender_credential).ok()

    assert f"Resuming transfer {tid}" in again.stdout
    assert f"Code:        {printed['code']}" in again.stdout
    assert "Images still arriving are sent too" in again.stdout
    assert f"Uploaded {len(it.sent)} images" in again.stdout
    objects = relay.query("SELECT count(*) FROM objects WHERE transfer_id = ?", tid)
    assert objects == [(len(it.sent),)]
    relay.authorize({"authorization_url": printed["link"]})
    redeemed = (
        relay.redeem(printed["code"], workdir=it.tc, pacs=pacs_address(it.trauma_center))
        .ok()
        .json()
    )
    assert redeemed["instances"] == len(it.sent)
    assert_identical_in_orthanc(it.trauma_center, it.sent)


def test_a_study_no_longer_followed_before_it_is_complete_is_not_taken_for_whole(
    relay: E2ERelay,
    orthanc_factory: Callable[..., OrthancServer],
    agent: InboxProcess,
    tmp_path: Path,
) -> None:
    it = _arranged(tmp_path, orthanc_factory, seed=7474)
    it.send(agent, it.thin)
    # The PACS holds two series more, which never come: following stops.
    follow = it.follow(agent, "--follow-for", "2", "--json")
    pushed = relay.push([], workdir=it.er, extra=follow).ok().json()

    assert pushed["incomplete"] is True
    assert pushed["instances"] == len(it.thin)
    relay.authorize(pushed)
    refused = relay.redeem(
        pushed["code"], workdir=it.tc, pacs=pacs_address(it.trauma_center)
    ).failed()
    assert (
        f"The sending hospital stopped sending this study before all of it had arrived (only "
        f"{len(it.thin)} images came), so it is incomplete. Nothing was stored." in refused.message
    )
    assert "continue with" not in refused.message  # running it again would not help
    assert it.trauma_center.instances() == []
