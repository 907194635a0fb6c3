"""Filing the images of one import under the local record: the elements coercion writes are
encoded once per identity read and reused (`coded_coercion`), and every copy stays the one a
whole pydicom read, coercion and write gives (real files; no peer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import TEST_FILES, valid_part10_images
from staged_files import coerced_whole, count_header_reads, edited, staged_copies

from receiving_site import coded_coercion, reconcile, staging, transcode
from receiving_site.reconcile import Coercion, Demographics
from transfer_codes.manifest import StudySummary

LOCAL = Demographics("MRN-777", "REGIONAL", "DOE^JANE", "19850214")
WHEN = datetime(2026, 11, 29, 23, 5, tzinfo=UTC)
COERCION = Coercion(LOCAL, WHEN, "trauma-relay", "ER")


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    coded_coercion.forget()
    yield
    coded_coercion.forget()


@pytest.fixture
def coercions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The PatientName of every data set `reconcile.coerce` coerced, in order."""
    seen: list[str] = []
    coerce: Callable[[pydicom.Dataset, Coercion], None] = reconcile.coerce

    def counted(ds: pydicom.Dataset, coercion: Coercion) -> None:
        seen.append(str(ds.get("PatientName", "")))
        coerce(ds, coercion)

    monkeypatch.setattr(reconcile, "coerce", counted)
    return seen


def test_every_image_of_an_import_is_the_one_a_whole_read_and_write_gives(tmp_path: Path) -> None:
    """Every valid bundled file in one import, twice over (the second time every identity was
    seen): pydicom ships the same patients in several transfer syntaxes and layouts, so the
    elements kept for one file are reused for others around them."""
    items = staged_copies(valid_part10_images(one_per_instance=False), tmp_path)
    expected = {item.entry.index: coerced_whole(item.path, COERCION) for item in items}

    for item in [*items, *reversed(items)]:
        copy = transcode.rewrite(item, coercion=COERCION)
        assert copy.read_bytes() == expected[item.entry.index], item.entry.index


def test_images_of_one_identity_are_coerced_once(tmp_path: Path, coercions: list[str]) -> None:
    sources = [
        edited(TEST_FILES / "CT_small.dcm", tmp_path / f"{n}.dcm", InstanceNumber=n)
        for n in range(1, 4)
    ]
    items = staged_copies(sources, tmp_path / "staged")
    expected = [coerced_whole(item.path, COERCION) for item in items]
    coercions.clear()

    copies = [transcode.rewrite(item, coercion=COERCION).read_bytes() for item in items]

    assert copies == expected
    assert len(set(copies)) == 3  # each its own image
    assert coercions == ["CompressedSamples^CT1"]


def test_another_identity_or_coercion_is_coerced_again(
    tmp_path: Path, coercions: list[str]
) -> None:
    """A different outside name, or a different coercion (another time), gives other elements:
    never those kept for the first."""
    sources = [
        edited(TEST_FILES / "CT_small.dcm", tmp_path / "1.dcm", InstanceNumber=1),
        edited(TEST_FILES / "CT_small.dcm", tmp_path / "2.dcm", PatientName="OTHER^NAME"),
    ]
    items = staged_copies(sources, tmp_path / "staged")
    later = Coercion(LOCAL, WHEN.replace(minute=6), "trauma-relay", "ER")
    runs = [(items[0], COERCION), (items[1], COERCION), (items[0], later), (items[0], COERCION)]
    expected = [coerced_whole(item.path, coercion) for item, coercion in runs]
    coercions.clear()

    copies = [transcode.rewrite(item, coercion=c).read_bytes() for item, c in runs]

    assert copies == expected
    assert len(set(copies)) == 3
    assert coercions == ["CompressedSamples^CT1", "OTHER^NAME", "CompressedSamples^CT1"]


def test_a_coercion_that_changes_the_character_set_is_never_kept(
    tmp_path: Path, coercions: list[str]
) -> None:
    """A local name the image's character set (CT_small: Latin-1) cannot hold makes the whole
    header UTF-8: pydicom writes it all again, every time."""
    local = Demographics("MRN-777", "REGIONAL", "NOWAK^ŁUKASZ", "19850214")
    coercion = Coercion(local, WHEN, "trauma-relay", "ER")
    items = staged_copies([TEST_FILES / "CT_small.dcm"] * 2, tmp_path)
    expected = [coerced_whole(item.path, coercion) for item in items]
    coercions.clear()

    copies = [transcode.rewrite(item, coercion=coercion).read_bytes() for item in items]

    assert copies == expected
    assert len(coercions) == 2
    assert pydicom.dcmread(BytesIO(copies[0])).SpecificCharacterSet == reconcile.UTF8


def _summary_of(path: Path) -> StudySummary:
    """A study summary naming the patient and study of the file at `path`."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return StudySummary(
        patient_name=str(ds.get("PatientName", "")),
        patient_id=str(ds.get("PatientID", "")),
        issuer_of_patient_id=str(ds.get("IssuerOfPatientID", "")),
        patient_birth_date="",
        patient_sex="",
        study_instance_uid=str(ds.StudyInstanceUID),
        study_date="",
        study_description="",
        accession_number="",
        modalities=(),
        series_count=1,
        instance_count=1,
        sending_site="St. Mary's",
        break_glass=False,
    )


def test_a_copy_made_from_the_checked_header_is_the_one_a_whole_read_and_write_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity check's read of each header (`check_header`) is what filing copies from:
    the file's header is not read again, and the copy is byte for byte the same, the elements
    the check parsed included. Every valid bundled file, twice over (the second time every
    identity was seen)."""
    items = staged_copies(valid_part10_images(one_per_instance=False), tmp_path)
    expected = {item.entry.index: coerced_whole(item.path, COERCION) for item in items}
    reads = count_header_reads(monkeypatch)

    for item in [*items, *reversed(items)]:
        header = staging.check_header(item, _summary_of(item.path))
        reads.clear()
        copy = transcode.rewrite(item, coercion=COERCION, header=header)
        assert copy.read_bytes() == expected[item.entry.index], item.entry.index
        assert reads == [], item.path  # (a deflated file is read whole by `dcmread`)


def test_a_header_read_for_another_file_is_not_used(tmp_path: Path) -> None:
    """A header whose file size is not the staged file's is read again, not trusted."""
    first, second = staged_copies(
        [
            edited(TEST_FILES / "CT_small.dcm", tmp_path / "1.dcm", InstanceNumber=1),
            edited(TEST_FILES / "CT_small.dcm", tmp_path / "2.dcm", ImageComments="longer"),
        ],
        tmp_path / "staged",
    )
    header = staging.check_header(first, _summary_of(first.path))

    copy = transcode.rewrite(second, coercion=COERCION, header=header)

    assert copy.read_bytes() == coerced_whole(second.path, COERCION)
