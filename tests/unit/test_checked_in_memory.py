"""The inbox checks an image it has just written from the bytes it holds
(`collect.parse_checked`) instead of reading the spool file back (`collect.read_checked`): both
must refuse the same files with the same reasons and read the same data sets, for every way a
file can be damaged (cut inside an element, before or inside its pixel data, a deflate bomb, no
Study Instance UID) and for the valid files of pydicom's corpus."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from deflate_bomb import write_bomb
from dicom_corpus import transfer_syntax, valid_part10_images

from sending_site import collect
from sending_site.synthetic import make_ct_study

PIXEL_DATA = 0x7FE00010


def _outcome(read: Callable[[], pydicom.Dataset]) -> tuple[str, object]:
    """("refused", reason) or ("read", the data set's elements as pydicom gives them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read()
            return "read", (list(ds.file_meta.items()), [repr(e) for e in ds])
    except (pydicom.errors.InvalidDicomError, ValueError) as e:
        return "refused", f"{type(e).__name__}: {e}"


def _same_both_ways(path: Path) -> tuple[str, object]:
    data = path.read_bytes()
    from_disk = _outcome(lambda: collect.read_checked(path))
    in_memory = _outcome(lambda: collect.parse_checked(data, str(transfer_syntax(path))))
    assert in_memory == from_disk
    return from_disk


def _cut(path: Path, keyword: str, into: Path) -> Path:
    element = pydicom.dcmread(path).get_item(keyword)
    into.write_bytes(path.read_bytes()[: element.value_tell + element.length // 2])
    return into


@pytest.mark.parametrize("keyword", ["StudyDescription", "PatientName", "PixelData"])
def test_a_file_cut_inside_an_element_is_refused_alike(tmp_path: Path, keyword: str) -> None:
    (image,) = make_ct_study(tmp_path / "study", 1)
    outcome = _same_both_ways(_cut(image, keyword, tmp_path / "cut.dcm"))
    assert outcome[0] == "refused"
    assert "cut off" in str(outcome[1])


def test_a_file_cut_before_its_pixel_data_is_refused_alike(tmp_path: Path) -> None:
    (image,) = make_ct_study(tmp_path / "study", 1)
    pixels = pydicom.dcmread(image).get_item(PIXEL_DATA)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(image.read_bytes()[: pixels.value_tell - 12])  # before its header
    assert _same_both_ways(cut) == (
        "refused",
        "ValueError: the file is cut off before its pixel data",
    )


def test_a_file_cut_inside_its_compressed_pixel_data_is_refused_alike(tmp_path: Path) -> None:
    original = next(p for p in valid_part10_images() if "JPEG 2000" in transfer_syntax(p).name)
    pixels = pydicom.dcmread(original).get_item(PIXEL_DATA)
    assert pixels.length == 0xFFFFFFFF
    data = original.read_bytes()
    for end in (pixels.value_tell + (len(data) - pixels.value_tell) // 2, len(data) - 4):
        cut = tmp_path / f"cut-{end}.dcm"
        cut.write_bytes(data[:end])
        outcome = _same_both_ways(cut)
        assert outcome[0] == "refused"
        assert "cut off" in str(outcome[1])


def test_a_file_without_a_study_instance_uid_is_refused_alike(tmp_path: Path) -> None:
    (image,) = make_ct_study(tmp_path / "study", 1)
    ds = pydicom.dcmread(image)
    del ds.StudyInstanceUID
    ds.save_as(image, enforce_file_format=True)
    assert _same_both_ways(image) == ("refused", "ValueError: the file has no StudyInstanceUID")


def test_a_deflate_bomb_is_refused_alike_without_being_inflated(tmp_path: Path) -> None:
    outcome = _same_both_ways(write_bomb(tmp_path / "bomb.dcm"))
    assert outcome[0] == "refused"
    assert "it is deflated and inflates to more than" in str(outcome[1])


def test_an_empty_file_is_refused_alike(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.touch()
    with pytest.raises(ValueError, match=r"^the file is empty$"):
        collect.read_checked(empty)
    with pytest.raises(ValueError, match=r"^the file is empty$"):
        collect.parse_checked(b"", "1.2.840.10008.1.2.1")


def test_valid_files_read_alike() -> None:
    images = valid_part10_images()
    assert len(images) > 20
    for path in images:
        assert _same_both_ways(path)[0] == "read", path
