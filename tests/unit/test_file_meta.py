"""The file meta of a filed copy is the one pydicom's `write_file_meta_info(enforce_standard=True)`
writes, whether its encoding around the instance UID was kept from an earlier image or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dicom_corpus import valid_part10_images
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info

from receiving_site import file_meta


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    file_meta.forget()
    yield
    file_meta.forget()


def _written(meta: FileMetaDataset, *, kept: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    if kept:
        file_meta.write(fp, meta)
    else:
        write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def _meta(path: Path, instance: str | None = None) -> FileMetaDataset:
    meta = read_file_meta_info(path)
    if instance is not None:
        meta.MediaStorageSOPInstanceUID = instance
    return meta


# Instance UIDs of odd and even length: the group length changes with them.
INSTANCES = [None, "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.12"]


def test_every_meta_is_the_one_pydicom_writes_kept_or_not() -> None:
    """Every valid bundled file, with its own instance UID and two others, each written three
    times: the first writes it whole and keeps it, the others reuse what was kept."""
    for path in valid_part10_images(one_per_instance=False):
        for instance in INSTANCES:
            expected = _written(_meta(path, instance), kept=False)
            for _ in range(3):
                assert _written(_meta(path, instance), kept=True) == expected, (path, instance)


def test_images_differing_only_in_their_instance_uid_share_what_was_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = valid_part10_images()[0]
    whole: list[int] = []
    writer = file_meta.write_file_meta_info

    def counted(*args: object, **kwargs: object) -> None:
        whole.append(1)
        writer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(file_meta, "write_file_meta_info", counted)
    for instance in INSTANCES:
        file_meta.write(DicomBytesIO(), _meta(path, instance))
    assert len(whole) == 1

    other = _meta(path)
    other.ImplementationVersionName = "OTHER"  # any other element: written whole again
    file_meta.write(DicomBytesIO(), other)
    assert len(whole) == 2


def test_a_meta_without_an_instance_uid_is_refused_as_pydicom_refuses_it() -> None:
    path = valid_part10_images()[0]
    file_meta.write(DicomBytesIO(), _meta(path))  # kept
    meta = _meta(path)
    del meta.MediaStorageSOPInstanceUID
    with pytest.raises(AttributeError, match="Media Storage SOP Instance UID"):
        file_meta.write(DicomBytesIO(), meta)
    meta = _meta(path, "")
    with pytest.raises(AttributeError, match="Media Storage SOP Instance UID"):
        file_meta.write(DicomBytesIO(), meta)
