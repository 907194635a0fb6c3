"""The embedded object store: sealed objects as files under one folder.

Paths are built only from the relay's own transfer id (checked to be 24 base32 symbols) and an
integer index, never from anything a peer named. A write is durable before `write_at` returns:
the file is fsynced, and so is its folder when the file is new.

Every disk operation runs in a worker thread, never on the event loop. A cancelled request
still waits for the thread it started (`_off_loop`): a file descriptor is closed only once no
thread uses it, and no write lands after the upload lock is released.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from relay import errors
from relay.storage.offloop import acquire_off_loop as _acquire_off_loop
from relay.storage.offloop import off_loop as _off_loop
from relay.storage.permissions import OWNER_ONLY_FILE, OWNER_ONLY_FOLDER
from transfer_codes.tokens import is_transfer_id

READ_BLOCK = 256 * 1024
WRITE_BATCH = 1024 * 1024  # bytes gathered from the body before one trip to a worker thread


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileObjectStore:
    """`ObjectStore` over a local folder."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_FOLDER)

    def _folder(self, transfer_id: str) -> Path:
        if not is_transfer_id(transfer_id):
            raise errors.BadRequest("That is not a transfer id.")
        return self._root / transfer_id

    def _path(self, transfer_id: str, index: int) -> Path:
        if index < 0:
            raise errors.BadRequest("Object indices start at 0.")
        return self._folder(transfer_id) / f"{index:08d}.sealed"

    async def write_at(
        self,
        transfer_id: str,
        index: int,
        offset: int,
        body: AsyncIterator[bytes],
        limit: int,
        too_large: errors.RelayError | None = None,
    ) -> int:
        """Write `body` at `offset` durably; the new end. Past `limit` bytes, `too_large` (by
        default `ObjectTooLarge`) is raised and nothing past `offset` is acknowledged; a full
        disk raises `StorageFull`."""
        folder = self._folder(transfer_id)
        path = self._path(transfer_id, index)
        # One descriptor from the first write to the fsync: a write-back error is reported to
        # descriptors open when it happened, not to one opened later just to fsync.
        created, fd = await _acquire_off_loop(_close_opened, _open_at_offset, folder, path, offset)
        try:
            written = offset  # in the file
            position = offset  # received, some of it still in `pending`
            pending: list[bytes] = []
            async for block in body:
                if position + len(block) > limit:
                    raise too_large or errors.ObjectTooLarge(
                        f"Objects on this relay may be at most {limit} bytes once sealed."
                    )
                pending.append(block)
                position += len(block)
                if position - written >= WRITE_BATCH:
                    await _off_loop(_write_all, fd, written, b"".join(pending))
                    pending.clear()
                    written = position
            # The rest, the fsync, and the folder's if the file is new: one trip to a thread.
            await _off_loop(
                _write_durably, fd, written, b"".join(pending), folder if created else None
            )
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.StorageFull() from e
            raise
        finally:
            await _off_loop(os.close, fd)
        return position

    async def size(self, transfer_id: str, index: int) -> int:
        return await _off_loop(_size, self._path(transfer_id, index))

    async def sha256(self, transfer_id: str, index: int) -> str:
        return await _off_loop(_sha256_file, self._path(transfer_id, index))

    async def read(self, transfer_id: str, index: int, start: int) -> AsyncIterator[bytes]:
        path = self._path(transfer_id, index)
        f = await _acquire_off_loop(_close, _open_at, path, start)
        try:
            while block := await _off_loop(f.read, READ_BLOCK):
                yield block
        finally:
            await _off_loop(f.close)

    async def delete_transfer(self, transfer_id: str) -> None:
        folder = self._folder(transfer_id)
        await _off_loop(shutil.rmtree, folder, True)
        await _off_loop(_fsync_dir, self._root)


def _write_all(fd: int, offset: int, data: bytes) -> None:
    """Write all of `data` at `offset` (`os.pwrite` may write less than asked)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done


def _write_durably(fd: int, offset: int, data: bytes, new_in: Path | None) -> None:
    """Write `data` at `offset` and fsync the file, and `new_in` (its folder, when the file
    is new)."""
    _write_all(fd, offset, data)
    os.fsync(fd)
    if new_in is not None:
        _fsync_dir(new_in)


def _open_at_offset(folder: Path, path: Path, offset: int) -> tuple[bool, int]:
    """`_prepare`, then a descriptor to write with: (newly created, descriptor)."""
    created = _prepare(folder, path, offset)
    return created, os.open(path, os.O_WRONLY)


def _close_opened(opened: tuple[bool, int]) -> None:
    os.close(opened[1])


def _close(f: BinaryIO) -> None:
    f.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open_at(path: Path, start: int) -> BinaryIO:
    f = path.open("rb")
    try:
        f.seek(start)
    except BaseException:
        f.close()
        raise
    return f


def _prepare(folder: Path, path: Path, offset: int) -> bool:
    """Create folder and file as needed and cut the file at `offset`; True if newly created.

    Bytes past the acknowledged offset are what a crash left after the last commit: they were
    never acknowledged, so dropping them loses nothing."""
    created = False
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_FOLDER)
        _fsync_dir(folder.parent)
    if not path.exists():
        path.touch(mode=OWNER_ONLY_FILE)
        created = True
    with path.open("r+b") as f:
        f.truncate(offset)
    return created


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()
