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
from dataclasses import dataclass
from pathlib import Path

from site_agent import errors

CREDENTIAL_ENV = "TRAUMA_RELAY_CREDENTIAL"

log = logging.getLogger(__name__)


def read_credential(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    unset: errors.CredentialMissing | None = None,
) -> str:
    """The credential in `path` (`--credential-file`), else in TRAUMA_RELAY_CREDENTIAL.

    Raises `unset` when neither is given (by default the `CredentialMissing` that names the
    command line's option), `CredentialMissing` naming the file when it is empty,
    `CredentialUnreadable` when the file cannot be read, `CredentialMalformed` when what it
    holds cannot be a credential."""
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
        if not value:
            raise errors.CredentialMissing(f"{where} is empty: it must hold the credential.")
    else:
        value = (os.environ if environ is None else environ).get(CREDENTIAL_ENV, "").strip()
        where = CREDENTIAL_ENV
    if not value:
        raise unset or errors.CredentialMissing()
    if not value.isprintable() or not value.isascii() or " " in value:
        raise errors.CredentialMalformed(
            f"{where} holds more than the credential (several lines, spaces or other "
            "characters): it must hold only the one line `trauma-relay site add` printed."
        )
    return value


@dataclass(frozen=True)
class AgentCredential:
    """A site agent's relay credential: in the file its `relay.credential_file` setting names,
    else in TRAUMA_RELAY_CREDENTIAL. A missing one is said in its settings' words, the key as
    its settings file writes it and its environment variable, not the command line's option."""

    file: Path | None
    env_prefix: str  # of the agent's settings in the environment (`Agent.env_prefix`)

    @property
    def setting(self) -> str:
        """Where the file is set, as the agent's settings file writes it (`--print-config`),
        and the environment variable for it, named like every setting's
        (`site_agent.settings.schema.Setting.env_name`)."""
        variable = f"{self.env_prefix}_RELAY_CREDENTIAL_FILE".upper()
        return (
            f"credential_file in the [relay] section of the agent's settings file (or {variable})"
        )

    def read(self, environ: Mapping[str, str] | None = None) -> str:
        """The credential; raises like `read_credential`."""
        unset = errors.CredentialMissing.in_settings(self.setting)
        return read_credential(self.file, environ, unset=unset)


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
