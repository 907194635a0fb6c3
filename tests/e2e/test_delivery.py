"""Acceptance: studies travel folder -> relay -> PACS unchanged (same SOP Instance UIDs, same
dataset bytes), into a pynetdicom Storage SCP and into Orthanc, through the real commands."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import transfer_syntax, valid_part10_images
from peers.orthanc import OrthancServer
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless

from e2e.harness import (
    E2ERelay,
    assert_identical_in_orthanc,
    assert_identical_in_scp,
    pacs_address,
    run_cli,
    wire_bytes,
)
from sending_site.synthetic import make_ct_study

# Transfers run side by side (each push and redeem is a process doing scrypt and sealing);
# a few at a time keeps a two-core CI machine busy without thrashing.
PARALLEL_TRANSFERS = 4
CT_INSTANCES = 100


@pytest.fixture(scope="module")
def ct_study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_ct_study(tmp_path_factory.mktemp("ct") / "study", CT_INSTANCES)


def test_synthetic_ct_into_storage_scp(
    relay: E2ERelay, ct_study: list[Path], storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    pushed, redeemed = relay.send(
        [ct_study[0].parent], workdir=tmp_path, pacs=pacs_address(storage_scp)
    )

    assert pushed["instances"] == redeemed["instances"] == CT_INSTANCES
    assert redeemed["transfer_id"] == pushed["transfer_id"]
    assert redeemed["bytes"] == pushed["bytes"] == sum(p.stat().st_size for p in ct_study)
    assert redeemed["destination"] == pacs_address(storage_scp)
    assert_identical_in_scp(storage_scp, ct_study)
    assert len(storage_scp.stores) == CT_INSTANCES  # each image sent once


def test_synthetic_ct_into_orthanc(
    relay: E2ERelay, ct_study: list[Path], orthanc: OrthancServer, tmp_path: Path
) -> None:
    pushed, redeemed = relay.send(
        [ct_study[0].parent], workdir=tmp_path, pacs=pacs_address(orthanc)
    )

    assert pushed["instances"] == redeemed["instances"] == CT_INSTANCES
    assert len(orthanc.studies()) == 1
    assert_identical_in_orthanc(orthanc, ct_study)


def _patient(path: Path) -> tuple[str, str, str]:
    """Who the file belongs to, as push compares patients."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return (
        str(ds.get("PatientID", "")),
        str(ds.get("IssuerOfPatientID", "")),
        str(ds.get("PatientName", "")),
    )


def corpus_transfers(files: Sequence[Path]) -> dict[str, list[Path]]:
    """The files as the ER would send them: one transfer per patient, and a further transfer
    wherever a patient has several encodings of one SOP instance (a transfer holds each
    instance once). Named for test output."""
    transfers: defaultdict[tuple[tuple[str, str, str], int], list[Path]] = defaultdict(list)
    copies: Counter[tuple[tuple[str, str, str], str]] = Counter()
    for path in files:
        patient = _patient(path)
        uid = _uid(path)
        transfers[patient, copies[patient, uid]].append(path)
        copies[patient, uid] += 1
    return {
        f"{n:02d}-"
        + (re.sub(r"[^A-Za-z0-9]+", "-", "-".join(patient)).strip("-") or "anon")
        + f"-{copy}": paths
        for n, ((patient, copy), paths) in enumerate(transfers.items())
    }


def _send_all(relay: E2ERelay, transfers: dict[str, list[Path]], workdir: Path, pacs: str) -> None:
    def one(name: str) -> None:
        pushed, redeemed = relay.send(transfers[name], workdir=workdir / name, pacs=pacs)
        assert pushed["instances"] == redeemed["instances"] == len(transfers[name]), name
        assert pushed["skipped"] == [], name

    with ThreadPoolExecutor(PARALLEL_TRANSFERS) as pool:
        list(pool.map(one, transfers))  # re-raises the first failure


def test_every_valid_bundled_file_into_storage_scp(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    """Every valid Part 10 image pydicom ships, every encoding of it included (explicit,
    implicit and big endian, deflated, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000,
    RLE), arrives as the exact bytes of the original data set, in its own transfer syntax
    (a deflated stream of odd length gains the one pad byte PS3.5 A.5 requires)."""
    files = valid_part10_images(one_per_instance=False)
    syntaxes = {transfer_syntax(p).name for p in files}
    assert {
        "Deflated Explicit VR Little Endian",
        "Explicit VR Big Endian",
        "RLE Lossless",
    } <= syntaxes
    assert any("JPEG-LS" in s for s in syntaxes)
    assert any("JPEG 2000" in s for s in syntaxes)

    _send_all(relay, corpus_transfers(files), tmp_path, pacs_address(storage_scp))

    stores = storage_scp.stores
    assert len(stores) == len(files)  # each file once, nothing else
    arrived = Counter((s.sop_instance_uid, s.transfer_syntax, s.dataset) for s in stores)
    wanted = Counter((_uid(p), str(transfer_syntax(p)), wire_bytes(p)) for p in files)
    missing = [
        p.name for p in files if arrived[_uid(p), str(transfer_syntax(p)), wire_bytes(p)] == 0
    ]
    assert not missing, f"not delivered byte for byte: {missing}"
    assert arrived == wanted


def _uid(path: Path) -> str:
    return str(pydicom.filereader.read_file_meta_info(path).MediaStorageSOPInstanceUID)


def test_every_valid_bundled_instance_into_orthanc(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    """One file per SOP instance (Orthanc keeps one object per UID), every syntax Orthanc
    accepts by default, checked through Orthanc's REST API."""
    files = valid_part10_images()
    transfers = corpus_transfers(files)
    assert len(transfers) == len({_patient(p) for p in files})

    _send_all(relay, transfers, tmp_path, pacs_address(orthanc))

    assert_identical_in_orthanc(orthanc, files)


def test_a_pacs_that_refuses_jpeg_2000_gets_it_decompressed_and_staff_are_told(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 3)
    ds = pydicom.dcmread(files[2])
    ds.compress(JPEG2000Lossless)  # the SOP Instance UID stays
    ds.save_as(files[2], enforce_file_format=True)
    orthanc = orthanc_factory(
        accepted_transfer_syntaxes=[ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    )
    pacs = pacs_address(orthanc)

    _pushed, redeemed = relay.send([tmp_path / "study"], workdir=tmp_path / "json", pacs=pacs)
    assert (redeemed["instances"], redeemed["decompressed"]) == (3, 1)
    assert len(orthanc.instances()) == 3

    # The same study in a second transfer, redeemed as staff do, without --json.
    work = tmp_path / "staff"
    work.mkdir()
    pushed = relay.push([tmp_path / "study"], workdir=work).ok().json()
    relay.authorize(pushed)
    args = [a for a in relay.redeem_args(state=work / "tc-state", pacs=pacs) if a != "--json"]
    run = run_cli(
        args, cwd=work, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
    ).ok()
    assert (
        "1 of the 3 images was decompressed because the PACS does not accept JPEG 2000 Image "
        "Compression (Lossless Only)."
    ) in run.stdout
