"""The sending agent's settings (`trauma-relay sender --print-config` shows them all, with their
defaults): the relay, its own DICOM node that the ER's PACS sends to, the spool the images wait
in, the hospital PACS it queries and retrieves from, the ER console and the state folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from site_agent.settings import (
    SECONDS,
    AETitle,
    AETitles,
    Duration,
    HostPort,
    Url,
    section,
    setting,
)
from site_agent.settings.sections import (
    ConsoleSettings,
    DicomPeerSettings,
    RelaySettings,
    StateSettings,
)

if TYPE_CHECKING:
    from sending_site.inbox.settings import InboxSettings

CONSOLE_PORT = 8760


@dataclass(frozen=True)
class DicomNodeSettings:
    ae_title: AETitle = setting(
        "TRAUMARELAY",
        "This agent's AE title: the PACS administrator adds a DICOM node with this title, this "
        "machine's address and the port below.",
    )
    listen: HostPort = setting(
        HostPort("0.0.0.0", 11112),  # noqa: S104 - the PACS sends from another machine
        "Address and port the agent receives DICOM on (C-STORE).",
    )
    accept_from: AETitles = setting(
        (),
        'The calling AE titles allowed to send images to this agent, e.g. ["CT1", "ER_PACS"]: '
        "the ER's scanners and PACS. Empty: any caller that addresses this agent's AE title. "
        "The hospital PACS below is always allowed, so that Fetch works.",
    )


@dataclass(frozen=True)
class SpoolSettings:
    folder: Path = setting(
        Path("/var/lib/trauma-relay/sending/spool"),
        "Where received images wait until their transfer is delivered; named by the agent's "
        "own ids, never by a received value.",
    )
    stable_age: Duration = setting(
        30 * SECONDS,
        "A study counts as complete when no image of it arrived for this long (DICOM has no "
        "end-of-study signal).",
    )


@dataclass(frozen=True)
class PacsWebSettings:
    url: Url = setting(
        "",
        "The hospital PACS's DICOMweb base URL, e.g. https://pacs.hospital.local/dicom-web: "
        "when set, Fetch retrieves studies from it (WADO-RS) instead of asking the PACS to "
        "send them (C-MOVE). Empty: C-MOVE.",
    )
    credential_file: Path | None = setting(
        None,
        "File holding the DICOMweb credential (a bearer token, or USER:PASSWORD for basic "
        "authentication); empty: none.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.credential_file is not None and not self.url:
            yield "credential_file", "is set, but pacs_web.url is empty."


@dataclass(frozen=True)
class SheetSettings:
    site_phone: str = setting(
        "",
        "The number the trauma center calls about a transfer, printed on every transfer sheet, "
        'e.g. "+1 555 010 0199 ext 42". Empty: TRAUMA_RELAY_SITE_PHONE if set, else a line to '
        "write it on.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        from sending_site.errors import BadSitePhone
        from sending_site.sheet import site_phone

        try:
            site_phone(self.site_phone)
        except BadSitePhone:
            yield (
                "site_phone",
                f"{self.site_phone!r} is not a phone number: digits, spaces and + - ( ) . /, "
                'and an extension if needed, e.g. "+1 555 010 0199 ext 42".',
            )


@dataclass(frozen=True)
class SenderSettings:
    relay: RelaySettings = section(RelaySettings, "How this agent reaches the relay.")
    dicom: DicomNodeSettings = section(
        DicomNodeSettings, "The agent's own DICOM node, which the ER's PACS sends studies to."
    )
    spool: SpoolSettings = section(SpoolSettings, "Received images, before they are sent.")
    pacs: DicomPeerSettings = section(
        DicomPeerSettings,
        "The hospital PACS, for finding a study nobody sent (C-FIND) and fetching it (C-MOVE "
        "to this agent's AE title): its administrator allows both for the AE title above. "
        "Without a host, staff cannot search the PACS from the console.",
    )
    pacs_web: PacsWebSettings = section(
        PacsWebSettings,
        "The hospital PACS's DICOMweb service (WADO-RS), to fetch studies over HTTP: faster "
        "than C-MOVE, and the PACS need not know this agent as a DICOM node.",
    )
    console: ConsoleSettings = section(
        ConsoleSettings,
        "The ER console: the web pages where staff create transfers.",
        ConsoleSettings(listen=HostPort("127.0.0.1", CONSOLE_PORT)),
    )
    sheet: SheetSettings = section(SheetSettings, "The transfer sheet the ER console prints.")
    state: StateSettings = section(StateSettings, "Where the agent keeps what it must not lose.")


def inbox_settings(settings: SenderSettings) -> InboxSettings:
    """The DICOM inbox's settings, from the agent's one settings system (the `dicom`, `spool`
    `pacs` and `pacs_web` sections); `InboxSettingInvalid` naming the setting to fix."""
    from sending_site.inbox.settings import InboxSettings, PacsNode, PacsWeb

    pacs, web = settings.pacs, settings.pacs_web
    return InboxSettings(
        spool=settings.spool.folder,
        ae_title=settings.dicom.ae_title,
        host=settings.dicom.listen.host,
        port=settings.dicom.listen.port,
        accept_from=settings.dicom.accept_from,
        pacs=PacsNode(pacs.ae_title, pacs.host, pacs.port) if pacs.host.strip() else None,
        pacs_web=PacsWeb(web.url, web.credential_file) if web.url else None,
        stable_after=settings.spool.stable_age,
    ).validated()
