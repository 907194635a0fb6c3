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
from collections.abc import AsyncIterator, Sequence
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
        *,
        cleared: bool = False,
    ) -> int:
        """Write `body` at `offset` durably; the new end. Past `limit` bytes, `too_large` (by
        default `ObjectTooLarge`) is raised and nothing past `offset` is acknowledged; a full
        disk raises `StorageFull`. (`cleared` changes nothing here: writing at `offset` cuts
        the file there anyway.)"""
        folder = self._folder(transfer_id)
        path = self._path(transfer_id, index)
        # One descriptor from the first write to the fsync: a write-back error is reported to
        # descriptors open when it happened, not to one opened later just to fsync. It is
        # opened with the first batch of bytes, and closed in the trip that fsyncs: a body of
        # one batch costs one trip to a worker thread.
        fd: int | None = None
        created = False
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
                    data = b"".join(pending)
                    pending.clear()
                    if fd is None:
                        created, opened = await _acquire_off_loop(
                            _close_opened, _open_and_write, folder, path, offset, data
                        )
                        fd = opened
                    else:
                        await _off_loop(_write_all, fd, written, data)
                    written = position
            # The rest, the fsync, the folder's if the file is new, and the close: one trip.
            data = b"".join(pending)
            if fd is None:
                await _off_loop(_write_new_durably, folder, path, offset, data)
            else:
                last, fd = fd, None  # closed by the trip, whatever happens in it
                await _off_loop(_write_durably, last, written, data, folder if created else None)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.StorageFull() from e
            raise
        finally:
            if fd is not None:
                await _off_loop(os.close, fd)
        return position

    async def clear(self, transfer_id: str, indices: Sequence[int]) -> None:
        """Nothing to do: `write_at` cuts a file where it writes."""

    async def size(self, transfer_id: str, index: int) -> int:
        return await _off_loop(_size, self._path(transfer_id, index))

    async def sizes(self, transfer_id: str, indices: Sequence[int]) -> list[int]:
        paths = [self._path(transfer_id, index) for index in indices]
        return await _off_loop(lambda: [_size(path) for path in paths])

    async def sha256(self, transfer_id: str, index: int) -> str:
        return await _off_loop(_sha256_file, self._path(transfer_id, index))

    async def read(self, transfer_id: str, index: int, start: int) -> AsyncIterator[bytes]:
        path = self._path(transfer_id, index)
        # Opened with the first block read; a short block is the end (a buffered read stops
        # short only there), and the file is closed in the trip that read it.
        f, block = await _acquire_off_loop(_close_first, _open_and_read, path, start)
        try:
            while len(block) == READ_BLOCK:
                yield block
                block = await _off_loop(_read_or_close, f)
        finally:
            if not f.closed:
                await _off_loop(f.close)
        if block:
            yield block

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
    """Write `data` at `offset`, fsync the file, and `new_in` (its folder, when the file is
    new); `fd` is closed in any case."""
    try:
        _write_all(fd, offset, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new_in is not None:
        _fsync_dir(new_in)


def _write_new_durably(folder: Path, path: Path, offset: int, data: bytes) -> None:
    """`_prepare`, then `_write_durably` through a descriptor opened for it."""
    created = _prepare(folder, path, offset)
    _write_durably(os.open(path, os.O_WRONLY), offset, data, folder if created else None)


def _open_and_write(folder: Path, path: Path, offset: int, data: bytes) -> tuple[bool, int]:
    """`_prepare`, then write `data` at `offset` through a descriptor left open to write the
    rest with: (newly created, descriptor)."""
    created = _prepare(folder, path, offset)
    fd = os.open(path, os.O_WRONLY)
    try:
        _write_all(fd, offset, data)
    except BaseException:
        os.close(fd)
        raise
    return created, fd


def _close_opened(opened: tuple[bool, int]) -> None:
    os.close(opened[1])


def _close_first(opened: tuple[BinaryIO, bytes]) -> None:
    opened[0].close()


def _open_and_read(path: Path, start: int) -> tuple[BinaryIO, bytes]:
    """`_open_at`, and the first block (the file closed already if that was all of it)."""
    f = _open_at(path, start)
    try:
        return f, _read_or_close(f)
    except BaseException:
        f.close()
        raise


def _read_or_close(f: BinaryIO) -> bytes:
    """The next block; `f` is closed once a block is short (the end of the file)."""
    block = f.read(READ_BLOCK)
    if len(block) < READ_BLOCK:
        f.close()
    return block


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
