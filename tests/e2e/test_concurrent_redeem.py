"""Acceptance, at the command line, against a real Orthanc: runs of one code on one machine (a
double click, two staff at one workstation) take turns. One redeems and delivers; the others say
they are waiting, then report that delivery, and exit 0; the PACS has each image once."""

from __future__ import annotations

import fcntl
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peers.orthanc import OrthancServer

from e2e.harness import (
    CLI_TIMEOUT,
    E2ERelay,
    finish_cli,
    pacs_address,
    run_cli,
    sop_instance_uid,
    start_cli,
    stop_cli,
)
from receiving_site import state
from sending_site.synthetic import make_ct_study
from transfer_codes.codes import RedemptionCode

RUNS = 6
WAITING = "is being redeemed on this machine already"


def test_six_runs_of_one_code_on_one_machine_take_turns(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 4, seed=95)
    pushed = relay.pushed_and_authorized(files[0].parent, tmp_path)
    state_dir = tmp_path / "tc-state"
    args = relay.redeem_args(state=state_dir, pacs=pacs_address(orthanc))

    # Until every run has started, this test holds the code's turn itself, as a run that got
    # there first would: so all six must wait, then race each other for it.
    slot = str(RedemptionCode.parse(pushed["code"]).locator)
    lock = os.open(state.folder(state_dir) / state.slot_file("lock", slot), os.O_RDWR | os.O_CREAT)
    procs = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        procs = [
            start_cli(
                args,
                cwd=tmp_path,
                credential=relay.receiver_credential,
                stdin=pushed["code"] + "\n",
            )
            for _ in range(RUNS)
        ]
        with ThreadPoolExecutor(RUNS) as pool:
            said = [pool.submit(p.stderr.readline) for p in procs if p.stderr is not None]
            assert len(said) == RUNS
            assert all(WAITING in line.result(CLI_TIMEOUT) for line in said)
    except BaseException:
        for proc in procs:
            stop_cli(proc)
        raise
    finally:
        os.close(lock)  # the turn is free: the six race for it
    runs = [finish_cli(p) for p in procs]

    answers = [run.ok().json() for run in runs]
    assert sum(a["delivered_before"] is None for a in answers) == 1  # the one that delivered
    assert {a["transfer_id"] for a in answers} == {pushed["transfer_id"]}
    assert {a["instances"] for a in answers} == {len(files)}
    assert {a["destination"] for a in answers} == {pacs_address(orthanc)}
    assert len(orthanc.instances()) == len(files)
    for path in files:
        assert orthanc.find_by_sop_instance_uid(sop_instance_uid(path)) is not None

    # Later, the same code on this machine says where it went, calmly.
    again = run_cli(
        [a for a in args if a != "--json"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    ).ok()
    assert "Already delivered from this machine at " in again.stdout
    assert f"{len(files)} verified images to {pacs_address(orthanc)}" in again.stdout
    assert len(orthanc.instances()) == len(files)
