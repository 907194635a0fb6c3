"""`store_to_folder` puts the staged images in place: moved when their staged copies are not
kept (the study is delivered and its staging folder removed next), copied when they are (a
review copy, imported into the PACS later from the staged copies) or when the folder is on
another file system. Either way the folder holds the staged bytes and its DICOMDIR."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from staged_files import staged_copies

from receiving_site import dicomdir, folder_copy
from receiving_site.staging import StagedObject
from sending_site.synthetic import make_ct_study

IMAGES = 4
SHM = Path("/dev/shm")  # noqa: S108 - a tmpfs, another file system than the test's folder


def _staged(tmp_path: Path, staging: Path) -> list[StagedObject]:
    made = make_ct_study(tmp_path / "made", IMAGES, rows=8, columns=8)
    return staged_copies(sorted(made), staging)


def _images(folder: Path) -> dict[bytes, Path]:
    """The images under `folder` (not its DICOMDIR), by their bytes."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.name != dicomdir.NAME:
            found[path.read_bytes()] = path
    return found


def test_a_delivered_study_is_moved_into_the_folder(tmp_path: Path) -> None:
    items = _staged(tmp_path, tmp_path / "state" / "staged")
    contents = {item.path.read_bytes(): os.stat(item.path).st_ino for item in items}
    target = tmp_path / "out" / "TRANSFER"
    (tmp_path / "out").mkdir()

    copy = folder_copy.store_to_folder(items, target, keep_staged=False)

    assert copy.stored == IMAGES
    assert (target / dicomdir.NAME).is_file()
    placed = _images(target)
    assert sorted(placed) == sorted(contents)
    for data, path in placed.items():
        assert path.stat().st_ino == contents[data]  # the staged file itself, not a copy
    assert not any(item.path.exists() for item in items)


def test_a_review_copy_leaves_the_staged_images_apart(tmp_path: Path) -> None:
    items = _staged(tmp_path, tmp_path / "state" / "staged")
    staged_bytes = [item.path.read_bytes() for item in items]
    target = tmp_path / "out" / "TRANSFER"
    (tmp_path / "out").mkdir()

    folder_copy.store_to_folder(items, target, keep_staged=True)

    placed = _images(target)
    assert sorted(placed) == sorted(staged_bytes)
    for item, data in zip(items, staged_bytes, strict=True):
        assert item.path.read_bytes() == data
        assert not os.path.samefile(item.path, placed[data])
    # A viewer that rewrites a file in the folder does not touch what may reach the PACS.
    next(iter(placed.values())).write_bytes(b"changed by a viewer")
    assert [item.path.read_bytes() for item in items] == staged_bytes


def test_a_folder_on_another_file_system_gets_copies(tmp_path: Path) -> None:
    if not SHM.is_dir() or SHM.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's folder")
    with tempfile.TemporaryDirectory(dir=SHM) as other:
        items = _staged(tmp_path, Path(other) / "staged")
        staged_bytes = sorted(item.path.read_bytes() for item in items)
        target = tmp_path / "out" / "TRANSFER"
        (tmp_path / "out").mkdir()

        copy = folder_copy.store_to_folder(items, target, keep_staged=False)

        assert copy.stored == IMAGES
        assert sorted(_images(target)) == staged_bytes
        assert (target / dicomdir.NAME).is_file()
