"""The spool folder: every received instance as a Part 10 file named by the agent's own id.

Layout (0700 folders, 0600 files; they hold patient data):

    SPOOL/index.sqlite3           the index (`index`)
    SPOOL/incoming/<id>.part      an instance being written and checked
    SPOOL/instances/<id>.dcm      an instance kept: whole, fsynced, its folder fsynced

No name here is ever built from a received value (CVE-2026-56445 and DCMTK's path traversal
bugs came from naming files by UID): ids are random hex. A file is written under `incoming/`,
flushed to disk, checked, and only then renamed into `instances/`, so `instances/` holds
nothing partial, and what a crash leaves in `incoming/` is deleted at the next start.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble

from sending_site.inbox import errors
from site_agent.local_state import fsync_folder, write_new

_ID = re.compile(r"[0-9a-f]{32}")
_COMPARED_BYTES = 1024 * 1024


def new_id() -> str:
    """A fresh instance id: 128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


class Spool:
    """The folders of one spool. `open()` creates them; the methods raise `OSError`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = root / "index.sqlite3"
        self.incoming = root / "incoming"
        self.instances = root / "instances"

    @classmethod
    def open(cls, root: Path) -> Spool:
        """Create the folders if needed, and delete what an interrupted write left behind.
        Raises `SpoolUnusable`."""
        spool = cls(root)
        try:
            for folder in (root, spool.incoming, spool.instances):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            for leftover in spool.incoming.iterdir():
                if leftover.suffix == ".part":
                    leftover.unlink()
        except OSError as e:
            raise errors.SpoolUnusable(
                f"The spool folder {root} cannot be used ({e.strerror or e}). Check that it is "
                "on a local disk with free space and that this agent may write there."
            ) from e
        return spool

    def write_incoming(self, instance_id: str, chunks: Iterable[bytes | memoryview]) -> Path:
        """Write `chunks` to `incoming/<id>.part` and flush it to disk."""
        path = self.incoming / f"{_checked(instance_id)}.part"
        write_new(path, chunks)
        return path

    def keep(self, incoming: Path, instance_id: str, *, flush: bool = True) -> Path:
        """Move a checked incoming file to `instances/<id>.dcm`, durably; with `flush=False`
        the move is durable only once `flush_kept` has returned (one flush for many)."""
        target = self.path_of(instance_id)
        os.rename(incoming, target)
        if flush:
            self.flush_kept()
        return target

    def flush_kept(self) -> None:
        """Make every move into `instances/` made so far durable."""
        fsync_folder(self.instances)

    def path_of(self, instance_id: str) -> Path:
        """Where a kept instance lives. Raises `ValueError` for anything but our own id."""
        return self.instances / f"{_checked(instance_id)}.dcm"

    def kept_ids(self) -> set[str]:
        """The ids of every file in `instances/`."""
        return {p.stem for p in self.instances.glob("*.dcm") if _ID.fullmatch(p.stem)}

    def same_data_set(self, first_id: str, second_id: str) -> bool:
        """Whether the kept files of the two ids hold the same data set, byte for byte: the
        same image sent again, whichever AE title sent it (which our file meta records).
        False if either cannot be read."""
        try:
            with (
                self.path_of(first_id).open("rb") as first,
                self.path_of(second_id).open("rb") as second,
            ):
                if _data_set_size(first) != _data_set_size(second):
                    return False
                while block := first.read(_COMPARED_BYTES):
                    if block != second.read(_COMPARED_BYTES):
                        return False
        except (
            OSError,
            ValueError,
            EOFError,
            struct.error,
            NotImplementedError,
            InvalidDicomError,
            BytesLengthException,
        ):  # what pydicom raises on a damaged file meta: not the same, then
            return False
        return True

    def discard(self, path: Path) -> None:
        """Delete a file of this spool, if it is still there."""
        if path.parent not in (self.incoming, self.instances):
            raise ValueError(f"{path} is not a file of the spool {self.root}")
        path.unlink(missing_ok=True)


def _checked(instance_id: str) -> str:
    if not _ID.fullmatch(instance_id):
        raise ValueError(f"{instance_id!r} is not an instance id of the spool")
    return instance_id


def _data_set_size(f: BinaryIO) -> int:
    """The size of the data set of the Part 10 file `f`, left at its data set's start."""
    read_preamble(f, False)
    _read_file_meta_info(f)
    start = f.tell()
    return os.fstat(f.fileno()).st_size - start
