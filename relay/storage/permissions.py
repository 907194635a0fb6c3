"""What the relay writes is readable by the relay's own user only, whatever the umask: the
ciphertext, the key locks and the database are no business of other accounts on the machine."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

OWNER_ONLY_FOLDER = 0o700
OWNER_ONLY_FILE = 0o600


def owner_only(*paths: Path) -> None:
    """Make the files among `paths` that exist readable and writable by their owner only."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, OWNER_ONLY_FILE)
