"""The site's local state folder and the one way files in it are written.

Every file is 0600 in a 0700 folder and written atomically and durably (temporary file, fsync,
rename or link, fsync of the folder): after a crash a file is either absent or whole.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from site_agent import errors


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """TRAUMA_RELAY_STATE, else `$XDG_STATE_HOME/trauma-relay` (~/.local/state/trauma-relay)."""
    env = os.environ if environ is None else environ
    if env.get("TRAUMA_RELAY_STATE"):
        return Path(env["TRAUMA_RELAY_STATE"])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "trauma-relay"


def site_folder(state_dir: Path, name: str) -> Path:
    """`<state>/<name>/`, created 0700 if missing (`sending`, `receiving`).

    Raises `StateFolderUnusable` when it cannot be made or written (a file in the way, no
    permission)."""
    path = state_dir / name
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise errors.StateFolderUnusable(
            f"The state folder {state_dir} cannot be used ({e.strerror or e}). Check --state "
            "(or TRAUMA_RELAY_STATE): it must be a folder this user can write."
        ) from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise errors.StateFolderUnusable(
            f"The state folder {path} cannot be written by this user. Check --state (or "
            "TRAUMA_RELAY_STATE) and the folder's permissions."
        )
    return path


def fsync_folder(path: Path) -> None:
    """Flush a folder's entries (a file created, renamed or linked in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Create `path` (0600; `FileExistsError` if it exists), write `chunks` and flush the file
    to disk; on any failure the file is removed. The folder is not flushed: a caller that
    renames or links the file flushes the folder then."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_temporary(target: Path, data: bytes) -> Path:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    write_new(tmp, (data,))
    return tmp


def write_atomically(target: Path, data: bytes) -> None:
    """Replace `target` with `data`, durably: temp file, fsync, rename, fsync the folder."""
    tmp = _write_temporary(target, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def create_once(target: Path, data: bytes) -> bool:
    """Write `target` durably unless it exists; True if this call created it. A hard link
    fails when the name is taken, so two runs started at once keep one file between them."""
    tmp = _write_temporary(target, data)
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_folder(target.parent)
    return True
