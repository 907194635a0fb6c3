"""Free space on the relay's disk: below the configured reserve, the relay takes no new
transfers or uploads (what it holds stays intact and downloadable) and `/healthz` says so."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from relay import errors


async def free_bytes(folder: Path) -> int:
    return (await asyncio.to_thread(shutil.disk_usage, folder)).free


async def require_room(folder: Path, reserve: int) -> None:
    """Raise `StorageFull` when the disk holding `folder` has `reserve` bytes free or fewer."""
    if await free_bytes(folder) <= reserve:
        raise errors.StorageFull()
