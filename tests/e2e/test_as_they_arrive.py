"""Acceptance, through the real commands and a real Orthanc: `redeem --as-they-arrive` stores
each image as soon as it is verified, while the sender is still uploading, and the result and
the delivery receipt are what the default (whole study first) gives. An image of another
patient midway is never stored; the images before it are, and the message says the study in
the PACS is incomplete, with the hold remembered."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from peers.orthanc import OrthancServer
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless

from e2e import harness
from e2e.harness import (
    E2ERelay,
    assert_identical_in_orthanc,
    finish_cli,
    pacs_address,
    printed_ready,
    run_cli,
    sop_instance_uid,
    start_cli,
    stop_cli,
)
from receiving_site import hold_record
from sending_site.synthetic import make_ct_study

AS_THEY_ARRIVE = "--as-they-arrive"
WAIT_SECONDS = 120.0  # generous: how long the polls below wait for something to happen


def _redeem_args(relay: E2ERelay, tmp_path: Path, orthanc: OrthancServer) -> list[str]:
    args = relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs_address(orthanc))
    return [*args, AS_THEY_ARRIVE]


def test_every_image_is_stored_and_the_receipt_says_so(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 12, seed=301)
    ds = pydicom.dcmread(files[7])
    ds.compress(JPEG2000Lossless)  # refused by this PACS: decompressed on its way
    ds.save_as(files[7], enforce_file_format=True)
    orthanc = orthanc_factory(
        accepted_transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    )
    # Two images are already there (as after a run that stopped midway): storing them again
    # is accepted, so a resumed run can simply store every image.
    for path in files[:2]:
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)

    run = run_cli(
        [*_redeem_args(relay, tmp_path, orthanc), "--associations", "2"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    )

    done = run.ok().json()
    assert (done["instances"], done["decompressed"]) == (12, 1)
    assert len(orthanc.instances()) == 12
    for path in files:
        assert orthanc.find_by_sop_instance_uid(sop_instance_uid(path)) is not None, path
    listing = relay.as_sender(
        ["transfers", "--state", str(tmp_path / "er-state"), "--json"], workdir=tmp_path
    ).ok()
    (mine,) = [t for t in listing.json()["transfers"] if t["transfer_id"] == pushed["transfer_id"]]
    receipt = mine["receipt"]
    assert (receipt["instances"], receipt["decompressed"], receipt["reconciled"]) == (12, 1, False)


def _listed(relay: E2ERelay, transfer_id: str) -> int:
    ((count,),) = relay.query(
        "SELECT COUNT(*) FROM manifest_records WHERE transfer_id = ? AND seq > 0", transfer_id
    )
    return int(count)


def _closed(relay: E2ERelay, transfer_id: str) -> bool:
    ((closed,),) = relay.query("SELECT manifest_closed FROM transfers WHERE id = ?", transfer_id)
    return bool(closed)


def _hold_after_a_few(relay: E2ERelay, push: subprocess.Popen[str], transfer_id: str) -> None:
    """Let the upload run in short steps until a few images are listed, then hold it there
    (SIGSTOP), its manifest still open. (The studies held have images over 1 MiB, which go one
    to a request: small ones go in batches, and a step could send them all.)"""
    os.kill(push.pid, signal.SIGSTOP)
    deadline = time.monotonic() + WAIT_SECONDS
    while _listed(relay, transfer_id) < 3:
        assert time.monotonic() < deadline, "the upload did not start"
        os.kill(push.pid, signal.SIGCONT)
        time.sleep(0.02)
        os.kill(push.pid, signal.SIGSTOP)
        time.sleep(0.2)  # let the relay finish what it was answering
    assert not _closed(relay, transfer_id), "the upload finished before the test could hold it"


def _wait_for_instances(orthanc: OrthancServer, count: int, redeem: subprocess.Popen[str]) -> None:
    """Until Orthanc holds `count` instances, redeem still running (the upload is held)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(orthanc.instances()) < count:
        assert redeem.poll() is None, finish_cli(redeem).describe()
        assert time.monotonic() < deadline, "the images verified so far were not stored"
        time.sleep(0.1)


@dataclass(frozen=True)
class _Held:
    push: subprocess.Popen[str]  # stopped (SIGSTOP) with `held_at` images listed
    redeem: subprocess.Popen[str]  # redeem --as-they-arrive, started after that
    transfer_id: str
    code: str
    held_at: int


@contextmanager
def _redeeming_while_held(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, *more: str
) -> Iterator[_Held]:
    """Push the study in `tmp_path / "study"`, hold the upload after a few images with its
    manifest open, authorize and start `redeem --as-they-arrive` (with `more` arguments); both
    end on exit."""
    push = start_cli(
        relay.push_args([tmp_path / "study"], state=tmp_path / "er-state"),
        cwd=tmp_path,
        credential=relay.sender_credential,
    )
    redeem = None
    try:
        printed = printed_ready(push)
        tid = printed["transfer"]
        _hold_after_a_few(relay, push, tid)
        relay.authorize({"authorization_url": printed["link"]})
        redeem = start_cli(
            [*_redeem_args(relay, tmp_path, orthanc), *more],
            cwd=tmp_path,
            credential=relay.receiver_credential,
            stdin=printed["code"] + "\n",
        )
        yield _Held(push, redeem, tid, printed["code"], _listed(relay, tid))
    finally:
        stop_cli(push)
        if redeem is not None:
            stop_cli(redeem)


def _stored_while_held_then_finished(
    relay: E2ERelay, orthanc: OrthancServer, held: _Held, images: int
) -> dict[str, Any]:
    """Every image uploaded so far reaches the PACS while the upload is still held; then the
    upload goes on, and redeem's result once both end."""
    assert held.held_at < images
    _wait_for_instances(orthanc, held.held_at, held.redeem)
    assert not _closed(relay, held.transfer_id)
    assert held.redeem.poll() is None, "redeem ended while the upload was held"

    os.kill(held.push.pid, signal.SIGCONT)
    finish_cli(held.push).ok()
    return dict(finish_cli(held.redeem).ok().json())


def test_images_are_in_the_pacs_before_the_upload_finishes(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 40, rows=768, columns=768, seed=302)
    with _redeeming_while_held(relay, orthanc, tmp_path) as held:
        redeemed = _stored_while_held_then_finished(relay, orthanc, held, len(files))

    assert redeemed["instances"] == len(files)
    assert_identical_in_orthanc(orthanc, files)


def test_over_stow_rs_images_are_in_the_pacs_before_the_upload_finishes(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    orthanc = orthanc_factory(dicomweb=True)
    files = make_ct_study(tmp_path / "study", 30, rows=768, columns=768, seed=306)
    stow = ("--stow", orthanc.dicomweb_url)
    with _redeeming_while_held(relay, orthanc, tmp_path, *stow) as held:
        redeemed = _stored_while_held_then_finished(relay, orthanc, held, len(files))

    assert redeemed["instances"] == len(files)
    assert redeemed["destination"] == orthanc.dicomweb_url
    assert_identical_in_orthanc(orthanc, files)


def test_another_patients_image_midway_is_not_stored_and_the_pacs_copy_is_called_incomplete(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 40, rows=768, columns=768, seed=303)
    bad = files[30]
    # Push at a terminal; while it asks "Send this study?", image 31 is rewritten for another
    # patient (same size, so push cannot tell), then the question is answered y.
    args = relay.push_args([tmp_path / "study"], state=tmp_path / "er-state")
    args.remove("--yes")
    controller, terminal = pty.openpty()
    push = subprocess.Popen(
        [harness.trauma_relay_executable(), *args],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=harness.cli_environment(relay.sender_credential, {"PYTHONUNBUFFERED": "1"}),
        text=True,
    )
    redeem = None
    try:
        assert push.stdout is not None
        harness.read_until(push.stdout.fileno(), "[y/N]")
        data = bad.read_bytes()
        assert data.count(b"DOE^JANE") == 1
        bad.write_bytes(data.replace(b"DOE^JANE", b"ROE^JOHN"))
        os.write(controller, b"y\n")
        printed = harness.read_until(push.stdout.fileno(), "Expires:")
        tid = _printed(r"Sending transfer (\S+) to", printed)
        _hold_after_a_few(relay, push, tid)
        assert _listed(relay, tid) < 30, "the upload went past the changed image too soon"
        held_at = _listed(relay, tid)
        relay.authorize({"authorization_url": _printed(r"authorization link: (\S+)", printed)})
        redeem = start_cli(
            _redeem_args(relay, tmp_path, orthanc),
            cwd=tmp_path,
            credential=relay.receiver_credential,
            stdin=_printed(r"Code: +(\S+)", printed) + "\n",
        )
        _wait_for_instances(orthanc, held_at, redeem)
        os.kill(push.pid, signal.SIGCONT)
        run = finish_cli(redeem).failed()
        push.wait(timeout=harness.CLI_TIMEOUT)
    finally:
        os.close(terminal)
        os.close(controller)
        stop_cli(push)
        if redeem is not None:
            stop_cli(redeem)

    message = run.message
    assert "do not all belong to the patient named in the transfer" in message
    assert "Nothing was stored" not in message
    stored = orthanc.instances()
    assert len(stored) >= held_at
    assert f"{len(stored)} of the " in message
    assert "images were already stored in the PACS" in message
    assert "the study there is INCOMPLETE" in message
    assert orthanc.find_by_sop_instance_uid(sop_instance_uid(bad)) is None
    for orthanc_id in stored:
        assert orthanc.instance_tags(orthanc_id)["PatientName"] == "DOE^JANE"
    (held,) = hold_record.held_studies(tmp_path / "tc-state")
    assert held.reason is hold_record.Reason.MIXED_PATIENTS
    assert held.transfer_id == tid
    assert "INCOMPLETE" in held.sentence


def _printed(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, text
    return found.group(1)


def test_a_run_stopped_midway_is_finished_by_running_it_again(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 30, rows=768, columns=768, seed=304)
    with _redeeming_while_held(relay, orthanc, tmp_path) as held:
        _wait_for_instances(orthanc, held.held_at, held.redeem)
        held.redeem.kill()  # the trauma center's machine goes down, part of the study stored
        held.redeem.wait()
        os.kill(held.push.pid, signal.SIGCONT)
        finish_cli(held.push).ok()
    assert held.held_at <= len(orthanc.instances()) < len(files)

    again = run_cli(
        _redeem_args(relay, tmp_path, orthanc),
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=held.code + "\n",
    )

    assert again.ok().json()["instances"] == len(files)
    assert_identical_in_orthanc(orthanc, files)
