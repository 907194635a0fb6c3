"""Acceptance, at the command line through a pseudo-terminal (pexpect), as trauma-center staff
use `redeem`: the code is echoed and asked again after a typo, Ctrl-D ends cleanly, the preview
lists every series and waits for a yes before anything is stored, a no stores nothing and says
how to continue, and storing into the PACS shows its progress and the record it filed under.
Without a terminal, `redeem` refuses before the code is spent unless `--yes` is given."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pexpect
import pydicom
import pytest
from peers.storage_scp import RecordingStorageSCP
from pydicom.filereader import read_dataset
from pydicom.uid import ExplicitVRLittleEndian

from e2e.harness import (
    CLI_TIMEOUT,
    E2ERelay,
    cli_environment,
    pacs_address,
    run_cli,
    trauma_relay_executable,
)
from sending_site.synthetic import make_ct_study

QUESTION = r"Is this your patient\? Store the study in .*\? \[y/N\] "


def two_series_study(folder: Path) -> list[Path]:
    """One study of two CT series: 3 slices of 1 mm, then 2 of 5 mm."""
    thin = make_ct_study(folder / "thin", 3, seed=301, slice_thickness_mm=1.0)
    thick = make_ct_study(folder / "thick", 2, seed=302, slice_thickness_mm=5.0)
    study = pydicom.dcmread(thin[0]).StudyInstanceUID
    for path in thick:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study
        ds.SeriesNumber = 2
        ds.save_as(path)
    return [*thin, *thick]


def pushed_study(relay: E2ERelay, tmp_path: Path) -> dict[str, Any]:
    two_series_study(tmp_path / "study")
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    return pushed


def redeem_args(relay: E2ERelay, tmp_path: Path, *where: str) -> list[str]:
    where = where or ("--out", str(tmp_path / "inbox"))
    return ["redeem", "--relay", relay.url, *where, "--state", str(tmp_path / "tc-state")]


@pytest.fixture
def terminal() -> Iterator[list[pexpect.spawn]]:
    """The `redeem` runs a test starts at a terminal; each is ended after the test."""
    started: list[pexpect.spawn] = []
    yield started
    for child in started:
        child.close(force=True)


def at_terminal(
    started: list[pexpect.spawn], relay: E2ERelay, args: list[str], cwd: Path
) -> pexpect.spawn:
    child = pexpect.spawn(
        trauma_relay_executable(),
        args,
        cwd=str(cwd),
        env=cli_environment(relay.receiver_credential),
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
    )
    started.append(child)
    return child


def exit_status(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return int(child.exitstatus)


def typo_of(code: str) -> str:
    """The code with its last symbol changed: the check symbol catches it."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")


def test_code_entry_echoes_and_asks_again_after_a_typo_and_the_preview_waits_for_a_yes(
    relay: E2ERelay, tmp_path: Path, terminal: list[pexpect.spawn]
) -> None:
    pushed = pushed_study(relay, tmp_path)
    child = at_terminal(terminal, relay, redeem_args(relay, tmp_path), tmp_path)

    child.expect_exact("Code from the transfer sheet (or scan the QR): ")
    child.sendline(typo_of(pushed["code"]))
    child.expect_exact(typo_of(pushed["code"]))  # echoed as typed
    child.expect_exact("This code has a typing mistake")
    child.expect_exact("Code from the transfer sheet (or scan the QR): ")
    child.sendline(pushed["code"])
    child.expect_exact(pushed["code"])

    child.expect(r"Study: +CT TRAUMA PANSCAN, CT, 2025-01-01 03:15, accession \S+ ")
    child.expect_exact("(2 series, 5 images)")
    child.expect_exact("Series:   AXIAL 1MM, CT, 3 images, 1 mm slices")
    child.expect_exact("AXIAL 5MM, CT, 2 images, 5 mm slices")
    child.expect_exact("Sent by:  St. Mary's ED (st-mary-er); authorized by the patient or family")
    child.expect(QUESTION)
    # Waiting for the answer: nothing has been written where the study goes.
    inbox = tmp_path / "inbox"
    assert not (inbox / pushed["transfer_id"]).exists()
    child.sendline("y")
    child.expect_exact("Delivered 5 verified images")
    assert exit_status(child) == 0
    images = [f for f in (inbox / pushed["transfer_id"]).rglob("IM*") if f.is_file()]
    assert len(images) == 5  # in PATIENT/STUDY/SERIES folders, beside the DICOMDIR
    # The typo cost nothing at the relay.
    ((failed,),) = relay.query(
        "SELECT failed_attempts FROM transfers WHERE id = ?", pushed["transfer_id"]
    )
    assert failed == 0


def test_a_no_stores_nothing_and_the_printed_command_continues(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path, terminal: list[Any]
) -> None:
    pushed = pushed_study(relay, tmp_path)
    args = redeem_args(relay, tmp_path, "--pacs", pacs_address(storage_scp))
    child = at_terminal(terminal, relay, args, tmp_path)
    child.expect_exact("Code from the transfer sheet (or scan the QR): ")
    child.sendline(pushed["code"])
    child.expect(QUESTION)
    child.sendline("n")
    child.expect_exact("Nothing was stored: the study was not confirmed.")
    child.expect(r"to store the study after all, run: (trauma-relay redeem --resume .+?)\r?\n")
    command = " ".join(child.match.group(1).split())
    assert exit_status(child) == 2
    assert storage_scp.stores == []

    argv = shlex.split(command)
    assert argv[:4] == ["trauma-relay", "redeem", "--resume", pushed["transfer_id"]]
    assert "--yes" not in argv  # it was asked, so it is asked again
    again = at_terminal(terminal, relay, argv[1:], tmp_path)
    again.expect_exact("Series:   AXIAL 1MM, CT, 3 images, 1 mm slices")
    again.expect(QUESTION)
    again.sendline("yes")
    again.expect_exact("Delivered 5 verified images")
    assert exit_status(again) == 0
    assert len(storage_scp.received) == 5


def test_storing_into_the_pacs_shows_progress_and_the_record_it_was_filed_under(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path, terminal: list[Any]
) -> None:
    pushed = pushed_study(relay, tmp_path)
    local = ["--local-patient-id", "MRN-55", "--local-issuer", "COUNTY", "--new-local-patient"]
    args = redeem_args(relay, tmp_path, "--pacs", pacs_address(storage_scp), *local)
    child = at_terminal(terminal, relay, args, tmp_path)
    child.expect_exact("Code from the transfer sheet (or scan the QR): ")
    child.sendline(pushed["code"])
    child.expect(QUESTION)
    child.sendline("y")
    # The count shows as storing begins (0/5, unless the first images are stored before it is
    # told) and grows as images are stored; images stored together are told as one count, so
    # it may skip (2/5 then 4/5), and it ends at 5/5.
    shown: list[int] = []
    while not shown or shown[-1] < 5:
        child.expect(r"stored (\d)/5 images in the PACS")
        shown.append(int(child.match.group(1)))
    assert shown == sorted(shown)
    child.expect_exact("Delivered 5 verified images")
    child.expect_exact(
        "Filed under this hospital's patient ID MRN-55 (issuer COUNTY), as DOE, JANE, born "
        "1985-02-14."
    )
    assert exit_status(child) == 0
    assert {str(ds.PatientID) for ds in stored_patients(storage_scp)} == {"MRN-55"}


def stored_patients(scp: RecordingStorageSCP) -> list[pydicom.Dataset]:
    """The data sets the PACS received (all Explicit VR Little Endian here)."""
    datasets = []
    for instance in scp.received.values():
        assert instance.transfer_syntax == ExplicitVRLittleEndian
        ds = read_dataset(BytesIO(instance.dataset), is_implicit_VR=False, is_little_endian=True)
        datasets.append(ds)
    return datasets


def test_ctrl_d_at_the_code_prompt_ends_cleanly(
    relay: E2ERelay, tmp_path: Path, terminal: list[Any]
) -> None:
    child = at_terminal(terminal, relay, redeem_args(relay, tmp_path), tmp_path)
    child.expect_exact("Code from the transfer sheet (or scan the QR): ")
    child.sendeof()
    child.expect_exact("trauma-relay: No code was entered; nothing was done.")
    rest = child.read()
    assert exit_status(child) == 2
    assert "Traceback" not in (child.before or "") + rest


def test_three_typos_end_without_costing_an_attempt(
    relay: E2ERelay, tmp_path: Path, terminal: list[Any]
) -> None:
    pushed = pushed_study(relay, tmp_path)
    child = at_terminal(terminal, relay, redeem_args(relay, tmp_path), tmp_path)
    for _ in range(3):
        child.expect_exact("Code from the transfer sheet (or scan the QR): ")
        child.sendline(typo_of(pushed["code"]))
    child.expect_exact("trauma-relay: This code has a typing mistake")
    assert exit_status(child) == 2
    ((state, failed),) = relay.query(
        "SELECT state, failed_attempts FROM transfers WHERE id = ?", pushed["transfer_id"]
    )
    assert (state, failed) == ("authorized", 0)


def test_without_a_terminal_it_refuses_before_the_code_is_spent_unless_yes(
    relay: E2ERelay, tmp_path: Path
) -> None:
    pushed = pushed_study(relay, tmp_path)
    args = redeem_args(relay, tmp_path)
    refused = run_cli(
        args, cwd=tmp_path, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
    ).failed()
    assert refused.returncode == 2
    assert "add --yes" in refused.message
    assert "Nothing was done" in refused.message
    attempts = relay.query(
        "SELECT count(*) FROM audit WHERE action = 'redeem-attempt' AND transfer_id = ?",
        pushed["transfer_id"],
    )
    assert attempts == [(0,)]
    assert relay.query("SELECT state FROM transfers WHERE id = ?", pushed["transfer_id"]) == [
        ("authorized",)
    ]

    done = run_cli(
        [*args, "--yes"],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    ).ok()
    assert "Delivered 5 verified images" in done.stdout
    assert re.search(r"Series: +AXIAL 1MM, CT, 3 images, 1 mm slices", done.stdout)
