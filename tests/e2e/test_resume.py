"""Acceptance, at the command line: once the code is spent, a failure never leaves the trauma
center at a dead end. A PACS that refuses one of the study's formats, for an image that cannot be
decompressed for it either, gets nothing at all, the message names the format and prints the
exact command that continues, and that command (or the same command with the same code) delivers
the study once the PACS is fixed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pydicom
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from staged_files import corrupted_j2k

from e2e.harness import E2ERelay, assert_identical_in_scp, pacs_address, run_cli
from sending_site.synthetic import make_ct_study

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def _study_with_a_jpeg2000_image(folder: Path) -> list[Path]:
    """Three uncompressed CT slices, then a JPEG 2000 CT image of the same patient whose
    codestream no decoder reads: a PACS that takes no JPEG 2000 cannot have it decompressed."""
    files = make_ct_study(folder / "a-ct", 3, seed=61)
    ds = pydicom.dcmread(corrupted_j2k(folder.parent / "broken"))
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = "DOE^JANE", "ER-12345", "ER-GENERAL"
    j2k = folder / "b-j2k" / "IM0001.dcm"
    j2k.parent.mkdir(parents=True)
    ds.save_as(j2k)
    return [*files, j2k]


def _refused(relay: E2ERelay, tmp_path: Path) -> tuple[dict[str, str], list[Path], str, str]:
    """Push the mixed study, redeem it into a PACS that takes no JPEG 2000; returns the push
    JSON, the files, the PACS address and the failure message."""
    files = _study_with_a_jpeg2000_image(tmp_path / "study")
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    with RecordingStorageSCP(transfer_syntaxes=UNCOMPRESSED) as picky:
        address = pacs_address(picky)
        run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=address).failed()
        assert picky.stores == [], "part of the study reached the PACS"
    return pushed, files, address, run.message


def test_a_refused_format_stores_nothing_and_the_printed_command_continues(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    pushed, files, address, message = _refused(relay, tmp_path)

    assert "CT Image Storage in JPEG 2000 Image Compression (1 image)" in message
    assert "could not be decompressed" in message
    assert "Nothing was stored" in message
    assert "That code was not accepted" not in message
    command = message.rsplit("continue with: ", 1)[1]
    argv = shlex.split(command)
    assert argv == [
        "trauma-relay",
        "redeem",
        "--resume",
        pushed["transfer_id"],
        "--relay",
        relay.url,
        "--pacs",
        address,
        "--state",
        str(tmp_path / "tc-state"),
        "--yes",
    ]

    # The PACS administrators fixed it (here: a PACS that takes every format, at its own
    # address); the printed command, pointed at it, delivers every image.
    argv[argv.index(address)] = pacs_address(storage_scp)
    again = run_cli([*argv[1:], "--json"], cwd=tmp_path, credential=relay.receiver_credential).ok()
    assert again.json()["instances"] == len(files)
    assert_identical_in_scp(storage_scp, files)


def test_the_spent_code_typed_again_continues_the_redemption(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    pushed, files, _address, _message = _refused(relay, tmp_path)

    again = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp)).ok()

    assert again.json()["instances"] == len(files)
    assert_identical_in_scp(storage_scp, files)
    results = [
        detail
        for (detail,) in relay.query(
            "SELECT detail FROM audit WHERE action = 'redeem-attempt' AND transfer_id = ?",
            pushed["transfer_id"],
        )
    ]
    assert [r for r in results if '"result":"repeated"' in r], results
