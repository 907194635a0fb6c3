"""The site's relay credential: from a file or the environment, never from the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from site_agent import errors

CREDENTIAL_ENV = "TRAUMA_RELAY_CREDENTIAL"


def read_credential(path: str | Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The credential in `path` (`--credential-file`), else in TRAUMA_RELAY_CREDENTIAL.

    Raises `CredentialMissing` when neither holds one, `CredentialUnreadable` when the file
    cannot be read."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise errors.CredentialUnreadable(
                f"The credential file {path} could not be read ({reason}). Check its path and "
                "permissions."
            ) from e
    else:
        value = (os.environ if environ is None else environ).get(CREDENTIAL_ENV, "").strip()
    if not value:
        raise errors.CredentialMissing()
    return value
