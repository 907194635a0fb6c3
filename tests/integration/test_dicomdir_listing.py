"""The DICOMDIR of a larger study (300 images over three series, one image sent twice) lists
every image exactly once, in its patient/study/series, pointing at the file `layout` put it in:
as pydicom reads it back, and as DCMTK does."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path, PurePosixPath

import pydicom
import pytest
from dicom_corpus import valid_part10_images
from peers import require_peer
from pydicom.fileset import FileSet

from receiving_site import dicomdir, layout
from sending_site.synthetic import make_ct_study

SERIES = 3
PER_SERIES = 100
FILE_ID = re.compile(r"^\s*\(0004,1500\) CS \[([^\]]*)\]", re.MULTILINE)
RECORD_TYPE = re.compile(r"^\s*\(0004,1430\) CS \[([A-Z ]+?)\s*\]", re.MULTILINE)


def _header(index: int, ds: pydicom.Dataset) -> layout.Header:
    return layout.Header(
        index=index,
        patient_id=str(ds.PatientID),
        patient_name=str(ds.PatientName),
        study_instance_uid=str(ds.StudyInstanceUID),
        study_date=str(ds.StudyDate),
        series_instance_uid=str(ds.SeriesInstanceUID),
        series_number=str(ds.SeriesNumber),
        modality=str(ds.Modality),
    )


def test_a_300_image_study_lists_each_image_once(tmp_path: Path) -> None:
    made = [
        path
        for number in range(1, SERIES + 1)
        for path in make_ct_study(
            tmp_path / "made" / str(number), PER_SERIES, rows=8, columns=8, series_number=number
        )
    ]
    sent = [*made, made[7]]  # the 8th image arrives twice, as image 301
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in sent]
    paths = layout.plan([_header(index, ds) for index, ds in enumerate(headers)])
    root = tmp_path / "study"
    for index, path in enumerate(sent):
        (root / paths[index]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / paths[index])

    left_out = dicomdir.write(root, [(i, paths[i], headers[i]) for i in sorted(paths)])

    assert left_out == ["image 301: the same SOP Instance UID as image 8"]
    made_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in made}
    assert len(made_uids) == SERIES * PER_SERIES

    # pydicom: every image once, each record pointing at the file layout gave it.
    file_set = FileSet(root / dicomdir.NAME)
    try:
        listed = Counter(str(instance.SOPInstanceUID) for instance in file_set)
        assert set(listed) == made_uids
        assert set(listed.values()) == {1}
        for instance in file_set:
            where = Path(instance.path)
            assert where.is_relative_to(root)
            assert str(pydicom.dcmread(where).SOPInstanceUID) == instance.SOPInstanceUID
        uid_at = {str(paths[index]): uid for index, uid in enumerate(map(_uid, made))}
        assert {
            Path(i.path).relative_to(root).as_posix(): str(i.SOPInstanceUID) for i in file_set
        } == uid_at
        # One patient, one study, three series of a hundred.
        (patient,) = file_set._tree.children
        (study,) = patient.children
        assert [len(series.children) for series in study.children] == [PER_SERIES] * SERIES
        for series in study.children:
            assert len({i.instance.SeriesInstanceUID for i in series.children}) == 1
    finally:
        file_set._stage["t"].cleanup()  # pydicom leaves its staging folder to the collector

    # DCMTK: a Part 10 file whose records name each file once, every named file there.
    dcmftest = subprocess.run(
        [require_peer("dcmftest"), str(root / dicomdir.NAME)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (dcmftest.returncode, dcmftest.stdout.split(":")[0]) == (0, "yes")
    dump = subprocess.run(
        [require_peer("dcmdump"), "-q", str(root / dicomdir.NAME)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert dump.stderr == ""
    file_ids = FILE_ID.findall(dump.stdout)
    assert sorted(file_ids) == sorted(
        "\\".join(paths[index].parts) for index in range(SERIES * PER_SERIES)
    )
    assert all((root / Path(*file_id.split("\\"))).is_file() for file_id in file_ids)
    assert Counter(RECORD_TYPE.findall(dump.stdout)) == {
        "PATIENT": 1,
        "STUDY": 1,
        "SERIES": SERIES,
        "IMAGE": SERIES * PER_SERIES,
    }


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _listing(tmp_path: Path, sent: list[Path]) -> list[tuple[int, PurePosixPath, pydicom.Dataset]]:
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in sent]
    paths = layout.plan([_header(index, ds) for index, ds in enumerate(headers)])
    return [(i, paths[i], headers[i]) for i in sorted(paths)]


def test_records_made_once_per_series_encode_as_records_made_for_every_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image of a series already listed gets only its own record made (`_records`); the
    DICOMDIR is byte for byte the one made with all four records of every image, for a study
    of several series with an image sent twice and for pydicom's own files (many patients,
    studies and SOP classes, some left out)."""
    made = [
        path
        for number in (1, 2)
        for path in make_ct_study(
            tmp_path / str(number), 20, rows=8, columns=8, series_number=number
        )
    ]
    corpus = [p for p in valid_part10_images() if _listable_header(p)]
    monkeypatch.setattr(dicomdir, "FileSet", _SameUID)  # each FileSet makes a UID of its own
    for sent in ([*made, made[3]], corpus):
        shortcut = dicomdir.encode(_listing(tmp_path, sent))
        with monkeypatch.context() as patch:
            patch.setattr(dicomdir, "_listed_series", lambda *_: None)
            every = dicomdir.encode(_listing(tmp_path, sent))
        assert shortcut == every
        assert shortcut[0] is not None


class _SameUID(FileSet):
    def __init__(self) -> None:
        super().__init__()
        self.UID = pydicom.uid.UID("1.2.826.0.1.3680043.8.498.77")


def _listable_header(path: Path) -> bool:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return all(ds.get(k) for k in ("PatientID", "PatientName", "StudyDate", "Modality"))
