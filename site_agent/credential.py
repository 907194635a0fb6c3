"""The site's relay credential: from a file or the environment, never from the command line.

A credential is one line of printable characters, as `trauma-relay site add` printed it; a file
holding anything else (two lines, a pasted e-mail) is refused with a sentence, and a file other
users of the machine can read gets a warning in the log."""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from site_agent import errors

CREDENTIAL_ENV = "TRAUMA_RELAY_CREDENTIAL"

log = logging.getLogger(__name__)


def read_credential(path: str | Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The credential in `path` (`--credential-file`), else in TRAUMA_RELAY_CREDENTIAL.

    Raises `CredentialMissing` when neither holds one, `CredentialUnreadable` when the file
    cannot be read, `CredentialMalformed` when what it holds cannot be a credential."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
            mode = Path(path).stat().st_mode
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise errors.CredentialUnreadable(
                f"The credential file {path} could not be read ({reason}). Check its path and "
                "permissions."
            ) from e
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning(
                "The credential file %s can be read by other users of this machine: make it "
                "readable by this user only (chmod 600 %s).",
                path,
                path,
            )
        where = f"The credential file {path}"
    else:
        value = (os.environ if environ is None else environ).get(CREDENTIAL_ENV, "").strip()
        where = CREDENTIAL_ENV
    if not value:
        raise errors.CredentialMissing()
    if not value.isprintable() or not value.isascii() or " " in value:
        raise errors.CredentialMalformed(
            f"{where} holds more than the credential (several lines, spaces or other "
            "characters): it must hold only the one line `trauma-relay site add` printed."
        )
    return value


def authorization_header(path: Path | None) -> dict[str, str]:
    """The HTTP Authorization header for a peer's credential file (a bearer token, or
    USER:PASSWORD for basic authentication); none without a file. Read when needed, never put
    in a URL or a log. Raises like `read_credential`."""
    if path is None:
        return {}
    secret = read_credential(path)
    if ":" in secret:
        basic = base64.b64encode(secret.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {basic}"}
    return {"Authorization": f"Bearer {secret}"}
