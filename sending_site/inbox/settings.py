"""The inbox's typed settings, with units in the names of the defaults, validated at start-up.

The agent's configuration file (TOML) fills these in; `trauma-relay sender inbox` sets the few
it takes on the command line. Memory is bounded by `max_associations * max_instance_bytes`: an
instance is held whole in memory while it is checked and written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from sending_site.inbox.errors import InboxSettingInvalid

SECONDS = 1.0
MINUTES = 60 * SECONDS
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# PS3.8 9.3.1: an AE title is 1 to 16 characters of the default repertoire, no backslash and
# no control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


def _check_ae_title(name: str, value: str) -> None:
    if not _AE_TITLE.fullmatch(value) or not value.strip():
        raise InboxSettingInvalid(
            f"{name} must be 1 to 16 letters, digits or punctuation (no backslash), not {value!r}."
        )


def _check_port(name: str, value: int, *, zero_ok: bool = False) -> None:
    if not (0 if zero_ok else 1) <= value <= 65535:
        raise InboxSettingInvalid(f"{name} must be a TCP port from 1 to 65535, not {value}.")


@dataclass(frozen=True)
class PacsNode:
    """The hospital PACS the agent queries (C-FIND) and retrieves from (C-MOVE)."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title} at {self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> PacsNode:
        """`AET@HOST:PORT` (an IPv6 host in brackets); `InboxSettingInvalid` otherwise."""
        ae_title, at, address = text.strip().partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and host and port.isdigit()):
            raise InboxSettingInvalid(
                f"{text!r} is not a PACS address; write it as AET@HOST:PORT, e.g. "
                "PACS@10.0.0.5:104."
            )
        return cls(ae_title, host.strip("[]"), int(port))


@dataclass(frozen=True)
class PacsWeb:
    """The hospital PACS's DICOMweb service, which Fetch retrieves from (WADO-RS) instead of
    C-MOVE: its base URL (e.g. https://pacs.hospital.local/dicom-web; checked by the settings
    to hold no credential, query or fragment) and the file holding its credential, if it
    needs one (a bearer token, or USER:PASSWORD for basic authentication)."""

    url: str
    credential_file: Path | None = None

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class InboxSettings:
    spool: Path
    ae_title: str = "TRAUMARELAY"
    host: str = "0.0.0.0"  # noqa: S104 - the PACS and the scanners must reach the agent
    port: int = 11112
    pacs: PacsNode | None = None
    pacs_web: PacsWeb | None = None
    # The calling AE titles allowed to store (the PACS's own besides); empty: any caller.
    accept_from: tuple[str, ...] = ()
    # Our advertised Maximum Length Receive; a peer's PDU declaring more is refused unread.
    max_pdu_bytes: int = 256 * KIB
    max_associations: int = 10
    max_instance_bytes: int = 512 * MIB
    # A study is "stable" once no image has arrived for this long (DICOM has no "study
    # complete" signal); the console warns before sending a study that is not.
    stable_after: float = 2 * MINUTES
    # How long a silent peer may hold an association or a connection before it is dropped.
    network_timeout: float = 60 * SECONDS
    # How long a PACS query or retrieve may wait for each answer (a C-MOVE answers per image,
    # a WADO-RS retrieve sends its parts one after another).
    pacs_timeout: float = 60 * SECONDS

    @property
    def callers(self) -> list[str]:
        """The calling AE titles the inbox takes images from; empty: any."""
        if not self.accept_from:
            return []
        pacs = [self.pacs.ae_title] if self.pacs is not None else []
        return list(dict.fromkeys([*self.accept_from, *pacs]))

    def validated(self) -> InboxSettings:
        """These settings, or `InboxSettingInvalid` naming the one to fix."""
        _check_ae_title("The AE title (ae_title)", self.ae_title)
        _check_port("The DICOM port (port)", self.port, zero_ok=True)
        if self.pacs is not None:
            _check_ae_title("The PACS AE title (pacs.ae_title)", self.pacs.ae_title)
            _check_port("The PACS port (pacs.port)", self.pacs.port)
            if not self.pacs.host.strip():
                raise InboxSettingInvalid("The PACS host (pacs.host) must not be empty.")
        for calling in self.accept_from:
            _check_ae_title("A calling AE title allowed to send (dicom.accept_from)", calling)
        # pynetdicom's own bounds for Maximum Length Receive; 0 (unlimited) is not allowed.
        if not 16 * KIB <= self.max_pdu_bytes <= 16 * MIB:
            raise InboxSettingInvalid(
                "max_pdu_bytes must be from 16384 to 16777216 bytes (16 KiB to 16 MiB), "
                f"not {self.max_pdu_bytes}."
            )
        if not 1 <= self.max_associations <= 200:
            raise InboxSettingInvalid(
                f"max_associations must be from 1 to 200, not {self.max_associations}."
            )
        if not 1 * MIB <= self.max_instance_bytes <= 4 * GIB:
            raise InboxSettingInvalid(
                "max_instance_bytes must be from 1 MiB to 4 GiB, "
                f"not {self.max_instance_bytes} bytes."
            )
        for name, seconds in (
            ("stable_after_seconds", self.stable_after),
            ("network_timeout_seconds", self.network_timeout),
            ("pacs_timeout_seconds", self.pacs_timeout),
        ):
            lowest = 0.0 if name == "stable_after_seconds" else 1.0
            # NaN compares false with everything, so it would slip past the bounds.
            if not (math.isfinite(seconds) and lowest <= seconds <= 24 * 60 * MINUTES):
                raise InboxSettingInvalid(
                    f"{name} must be from {lowest:g} to 86400 seconds, not {seconds:g}."
                )
        return self
