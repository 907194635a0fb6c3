"""Deliver staged instances into a folder: `<folder>/<transfer id>/`, the images in the
PATIENT/STUDY/SERIES layout of `layout`, with a DICOMDIR (`dicomdir`) that viewers open.

Staged copies that are not kept (the study is delivered, and its staging folder removed next)
are moved into place when the folder is on the staging folder's file system: they were fsynced
when staged, so only the folders they land in are fsynced, once each. Kept ones (a review copy,
imported into the PACS later from the staged copies), and any on another file system, are
copied and each copy fsynced: a file in the folder never shares its bytes with a staged copy
that may still reach a PACS.

The folder given must exist, or at least its parent: a mistyped path is refused rather than
silently made several levels deep.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pydicom
from pydicom.dataset import Dataset

from receiving_site import dicomdir, errors, layout
from receiving_site.staging import StagedObject
from site_agent.local_state import fsync_folder, write_atomically

COPIES_AT_ONCE = 8
T = TypeVar("T")


def check_folder(folder: Path) -> None:
    """Make `folder` if only it is missing, and write (then remove) a file in it, so that a
    folder that cannot take the study is found before the code is spent. Raises
    `FolderUnusable`, naming the missing parent if there is one."""
    try:
        folder.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".trauma-relay-check-"):
            pass
    except FileNotFoundError as e:
        raise errors.FolderUnusable(
            f"The folder {folder} cannot be made because {folder.parent} does not exist. Check "
            "the path, or make that folder first; nothing was stored."
        ) from e
    except OSError as e:
        raise errors.FolderUnusable(
            f"The folder {folder} cannot be written ({e.strerror or e}); nothing was stored."
        ) from e


@dataclass(frozen=True)
class FolderCopy:
    """What `store_to_folder` wrote: `stored` images under `path`, and a note for staff when
    some are not listed in the DICOMDIR (empty otherwise)."""

    stored: int
    path: Path
    note: str = ""


def _header(index: int, ds: Dataset) -> layout.Header:
    return layout.Header(
        index=index,
        patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        study_date=str(ds.get("StudyDate", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        series_number=str(ds.get("SeriesNumber", "")),
        modality=str(ds.get("Modality", "")),
    )


def _header_of(item: StagedObject, read: Mapping[int, Dataset]) -> Dataset:
    header = read.get(item.entry.index)
    return header if header is not None else pydicom.dcmread(item.path, stop_before_pixels=True)


def _copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _moved(source: Path, target: Path) -> bool:
    """Move the staged `source` to `target` (replacing it); False, with nothing changed, if
    they are on different file systems."""
    try:
        os.replace(source, target)
    except OSError as e:
        if e.errno == errno.EXDEV:
            return False
        raise
    return True


def _place(
    moves: list[tuple[Path, Path]], *, keep_staged: bool, while_copying: Callable[[], T]
) -> T:
    """Put each staged file (source, target) in place, moved unless `keep_staged` (or across
    file systems), else copied and fsynced a few at a time; `while_copying` runs meanwhile
    (it needs the CPU, the copies the disk). Returns what it returned."""
    left = moves
    if not keep_staged:
        while left and _moved(*left[0]):
            left = left[1:]
    if not left:
        return while_copying()
    # A few copies at a time: each waits on its own fsync, and those can share a commit.
    with ThreadPoolExecutor(max_workers=COPIES_AT_ONCE) as pool:
        copies = [pool.submit(_copy, source, target) for source, target in left]
        done = while_copying()
        for copy in copies:
            copy.result()
    return done


def store_to_folder(
    staged: list[StagedObject],
    target: Path,
    read: Mapping[int, Dataset] | None = None,
    *,
    keep_staged: bool = True,
) -> FolderCopy:
    """Put every instance into `target` (made if missing; its parent must exist) in the
    `layout` folders, and write its DICOMDIR; everything is durable on return. `read`: headers
    already read (without pixel data), by image index; the others are read here. Unless
    `keep_staged`, the staged files are moved into place where they can be (their staging
    folder is to be removed next). Raises `FolderUnusable` if the folder cannot take them."""
    try:
        target.mkdir(exist_ok=True)
        # Each header is read once, for the layout and the DICOMDIR both.
        headers = {item.entry.index: _header_of(item, read or {}) for item in staged}
        paths = layout.plan([_header(index, ds) for index, ds in headers.items()])
        moves = [(item.path, target / paths[item.entry.index]) for item in staged]
        folders = {to.parent for _, to in moves}
        for folder in sorted(folders):
            folder.mkdir(parents=True, exist_ok=True)  # below the study's folder: our names
        # The DICOMDIR is made while the images are put in place, and written only once
        # every image is.
        encoded, left_out = _place(
            moves,
            keep_staged=keep_staged,
            while_copying=lambda: dicomdir.encode(
                [(i, paths[i], headers[i]) for i in sorted(paths)]
            ),
        )
        # The new names (and folders) are durable once their folders are: each fsynced once,
        # from the images' folders up to the one holding the study's.
        for folder in sorted(_with_parents(folders, target.parent), reverse=True):
            fsync_folder(folder)
        if encoded is not None:
            write_atomically(target / dicomdir.NAME, encoded)
    except OSError as e:
        raise errors.FolderUnusable(
            f"The study could not be written into {target} ({e.strerror or e})."
        ) from e
    note = ""
    if left_out:
        note = (
            f"{len(left_out)} of the {len(staged)} images are in the folder but not listed in "
            f"its DICOMDIR ({'; '.join(left_out[:3])}); open those files directly."
        )
    return FolderCopy(len(staged), target, note)


def _with_parents(folders: set[Path], top: Path) -> set[Path]:
    """`folders` and every folder above them up to `top` (included)."""
    found = {top}
    for folder in folders:
        while folder not in found:
            found.add(folder)
            folder = folder.parent
    return found
