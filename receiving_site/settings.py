"""The receiving agent's settings (`trauma-relay receiver --print-config` shows them all, with
their defaults): the relay, where studies are stored (a PACS over C-STORE, DICOMweb STOW-RS),
the worklist staff pick the local patient from, the local issuer of patient IDs, the trauma
console and the state folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from site_agent.settings import AETitle, Count, HostPort, Port, Url, section, setting
from site_agent.settings.sections import (
    ConsoleSettings,
    DicomPeerSettings,
    RelaySettings,
    StateSettings,
)

CONSOLE_PORT = 8770


@dataclass(frozen=True)
class PacsSettings:
    ae_title: AETitle = setting("PACS", "The PACS's AE title.")
    host: str = setting("", "Its host name or address; empty: no C-STORE destination.")
    port: Port = setting(104, "Its DICOM port.")
    calling_ae_title: AETitle = setting(
        "TRAUMARELAY",
        "This agent's AE title toward the PACS, which must accept C-STORE and C-FIND from it.",
    )
    associations: Count = setting(
        4, "How many associations store images at once, each reused for many images."
    )
    as_they_arrive: bool = setting(
        False,
        "Store each image as soon as it is verified, while the rest is still arriving, instead "
        "of once the whole study is (by C-STORE, or by STOW-RS when [stow] names a server).",
    )


@dataclass(frozen=True)
class StowSettings:
    url: Url = setting(
        "",
        "DICOMweb base URL for STOW-RS, e.g. https://pacs.hospital.local/dicom-web; empty: "
        "no STOW-RS destination.",
    )
    credential_file: Path | None = setting(
        None,
        "File holding the STOW-RS credential (a bearer token, or USER:PASSWORD for basic "
        "authentication); empty: none.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.credential_file is not None and not self.url:
            yield "credential_file", "is set, but stow.url is empty."


@dataclass(frozen=True)
class IdentitySettings:
    local_issuer: str = setting(
        "",
        "Issuer of Patient ID written with the local medical record number (this hospital's "
        "assigning authority).",
    )


@dataclass(frozen=True)
class ReceiverSettings:
    relay: RelaySettings = section(RelaySettings, "How this agent reaches the relay.")
    pacs: PacsSettings = section(PacsSettings, "The PACS studies are stored into over C-STORE.")
    stow: StowSettings = section(StowSettings, "A DICOMweb destination for studies (STOW-RS).")
    worklist: DicomPeerSettings = section(
        DicomPeerSettings,
        "The Modality Worklist SCP staff pick the local patient from (C-FIND); without a "
        "host, staff type the local medical record number.",
        DicomPeerSettings(ae_title="WORKLIST"),
    )
    identity: IdentitySettings = section(
        IdentitySettings, "How imported studies are filed under the local record."
    )
    console: ConsoleSettings = section(
        ConsoleSettings,
        "The trauma console: the web pages where staff enter a code and import the study.",
        ConsoleSettings(listen=HostPort("127.0.0.1", CONSOLE_PORT)),
    )
    state: StateSettings = section(StateSettings, "Where the agent keeps what it must not lose.")
