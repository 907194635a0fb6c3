"""The embedded object store: sealed objects as files under one folder.

Paths are built only from the relay's own transfer id (checked to be 24 base32 symbols) and an
integer index, never from anything a peer named. A write is durable before `write_at` returns:
the file is fsynced, and so is its folder when the file is new.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from relay import errors
from transfer_codes.tokens import is_transfer_id

READ_BLOCK = 256 * 1024


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
        root.mkdir(parents=True, exist_ok=True)

    def _folder(self, transfer_id: str) -> Path:
        if not is_transfer_id(transfer_id):
            raise errors.BadRequest("That is not a transfer id.")
        return self._root / transfer_id

    def _path(self, transfer_id: str, index: int) -> Path:
        if index < 0:
            raise errors.BadRequest("Object indices start at 0.")
        return self._folder(transfer_id) / f"{index:08d}.sealed"

    async def write_at(
        self, transfer_id: str, index: int, offset: int, body: AsyncIterator[bytes], limit: int
    ) -> int:
        folder = self._folder(transfer_id)
        path = self._path(transfer_id, index)
        created = await asyncio.to_thread(_prepare, folder, path, offset)
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY)
        try:
            position = offset
            os.lseek(fd, offset, os.SEEK_SET)
            async for block in body:
                if position + len(block) > limit:
                    raise errors.ObjectTooLarge(
                        f"Objects on this relay may be at most {limit} bytes once sealed."
                    )
                view = memoryview(block)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                position += len(block)
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        if created:
            await asyncio.to_thread(_fsync_dir, folder)
        return position

    async def size(self, transfer_id: str, index: int) -> int:
        try:
            return self._path(transfer_id, index).stat().st_size
        except FileNotFoundError:
            return 0

    async def sha256(self, transfer_id: str, index: int) -> str:
        return await asyncio.to_thread(_sha256_file, self._path(transfer_id, index))

    async def read(self, transfer_id: str, index: int, start: int) -> AsyncIterator[bytes]:
        path = self._path(transfer_id, index)
        with path.open("rb") as f:
            f.seek(start)
            while True:
                block = await asyncio.to_thread(f.read, READ_BLOCK)
                if not block:
                    return
                yield block

    async def delete_transfer(self, transfer_id: str) -> None:
        folder = self._folder(transfer_id)
        await asyncio.to_thread(shutil.rmtree, folder, True)
        await asyncio.to_thread(_fsync_dir, self._root)


def _prepare(folder: Path, path: Path, offset: int) -> bool:
    """Create folder and file as needed and cut the file at `offset`; True if newly created.

    Bytes past the acknowledged offset are what a crash left after the last commit: they were
    never acknowledged, so dropping them loses nothing."""
    created = False
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_dir(folder.parent)
    if not path.exists():
        path.touch()
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
