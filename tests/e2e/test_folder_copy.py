"""Acceptance, at the command line: `redeem --out` writes a recognisable PATIENT/STUDY/SERIES
layout with a DICOMDIR that pydicom and DCMTK both read, names folders only from sanitised
values (a hostile patient name stays inside), and refuses a folder whose parent is missing
before the code is spent."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydicom
from peers import require_peer
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from e2e.harness import E2ERelay, sop_instance_uid
from sending_site.synthetic import make_ct_study

OFFSET_POINTERS = re.compile(r"^\s*\((0004,1200|0004,1202|0004,1400|0004,1420)\) up (\d+)")
RECORD_AT = re.compile(r"#\s+offset=\$(\d+)")


def _two_series(folder: Path, patient_name: str) -> list[Path]:
    """One study, two CT series (numbers 1 and 4) of two images, in `folder`."""
    first = make_ct_study(folder, 2, seed=91, patient_name=patient_name)
    second = make_ct_study(folder / "b", 2, seed=92, patient_name=patient_name)
    study = pydicom.dcmread(first[0]).StudyInstanceUID
    series = generate_uid()
    for path in second:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series, 4
        ds.save_as(path)
    return [*first, *second]


def test_a_hostile_name_gets_a_safe_layout_with_a_dicomdir_pydicom_and_dcmtk_read(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = _two_series(tmp_path / "study", "../../x")
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)
    inbox = tmp_path / "inbox"

    done = relay.redeem(pushed["code"], workdir=tmp_path, out=inbox).ok().json()

    root = inbox / pushed["transfer_id"]
    assert done["destination"] == str(root)
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert written == [
        "DICOMDIR",
        "X/20250101/S001_CT/IM000000",
        "X/20250101/S001_CT/IM000001",
        "X/20250101/S004_CT/IM000002",
        "X/20250101/S004_CT/IM000003",
    ]
    # "../../x" from the study's folder, or from the inbox, would be one of these.
    assert not (tmp_path / "x").exists()
    assert not (inbox / "x").exists()
    assert not (tmp_path.parent / "x").exists()

    # pydicom reads the DICOMDIR back, and every record points at the image it names.
    file_set = FileSet(root / "DICOMDIR")
    assert len(file_set) == len(files)
    assert {i.SOPInstanceUID for i in file_set} == {sop_instance_uid(p) for p in files}
    for instance in file_set:
        assert Path(instance.path).is_relative_to(root)
        assert pydicom.dcmread(instance.path).SOPInstanceUID == instance.SOPInstanceUID
    assert [n.record_type for n in file_set._tree.children] == ["PATIENT"]
    assert sorted(str(s.Modality) for s in file_set.find(SeriesNumber=4, load=False)) == [
        "CT",
        "CT",
    ]
    file_set._stage["t"].cleanup()  # pydicom leaves its staging folder to the collector

    # DCMTK: a Part 10 file, and every offset in it lands on a record DCMTK itself found.
    dcmftest = subprocess.run(
        [require_peer("dcmftest"), str(root / "DICOMDIR")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (dcmftest.returncode, dcmftest.stdout.split(":")[0]) == (0, "yes")
    dump = subprocess.run(
        [require_peer("dcmdump"), str(root / "DICOMDIR")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records = {int(m.group(1)) for m in RECORD_AT.finditer(dump)}
    pointers = [int(m.group(2)) for line in dump.splitlines() if (m := OFFSET_POINTERS.match(line))]
    assert len(records) == 1 + 1 + 2 + len(files)  # patient, study, two series, images
    assert {p for p in pointers if p} == records
    assert "X\\20250101\\S004_CT\\IM000003" in dump


def test_a_folder_whose_parent_is_missing_is_refused_before_the_code_is_spent(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 1, seed=93)
    pushed = relay.pushed_and_authorized(files[0].parent, tmp_path)
    deep = tmp_path / "no-such-share" / "incoming"

    run = relay.redeem(pushed["code"], workdir=tmp_path, out=deep).failed()

    assert f"{deep.parent} does not exist" in run.message
    assert "The code has not been used" in run.message
    assert not deep.parent.exists()
    # Only the folder itself is made, when its parent exists; the same code still works.
    relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "incoming").ok()
