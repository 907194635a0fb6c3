"""Deliver staged instances into a folder: `<folder>/<transfer id>/`, the images in the
PATIENT/STUDY/SERIES layout of `layout`, with a DICOMDIR (`dicomdir`) that viewers open.

The folder given must exist, or at least its parent: a mistyped path is refused rather than
silently made several levels deep.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from receiving_site import dicomdir, errors, layout
from receiving_site.staging import StagedObject
from site_agent.local_state import write_atomically

COPIES_AT_ONCE = 8


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
    target.parent.mkdir(parents=True, exist_ok=True)  # below the study's folder: our names
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)


def store_to_folder(
    staged: list[StagedObject], target: Path, read: Mapping[int, Dataset] | None = None
) -> FolderCopy:
    """Copy every instance into `target` (made if missing; its parent must exist) in the
    `layout` folders, and write its DICOMDIR. `read`: headers already read (without pixel
    data), by image index; the others are read here. Raises `FolderUnusable` if the folder
    cannot take them."""
    try:
        target.mkdir(exist_ok=True)
        # Each header is read once, for the layout and the DICOMDIR both.
        headers = {item.entry.index: _header_of(item, read or {}) for item in staged}
        paths = layout.plan([_header(index, ds) for index, ds in headers.items()])
        # A few copies at a time: each waits on its own fsync, and those can share a commit.
        with ThreadPoolExecutor(max_workers=COPIES_AT_ONCE) as pool:
            copies = [
                pool.submit(_copy, item.path, target / paths[item.entry.index]) for item in staged
            ]
            # The DICOMDIR is made meanwhile (the copies wait on the disk, this on the CPU),
            # and written only once every image is in place.
            encoded, left_out = dicomdir.encode([(i, paths[i], headers[i]) for i in sorted(paths)])
            for copy in copies:
                copy.result()
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
