"""The sections both agents have: how to reach the relay, where the agent keeps its state, and
its web console; and the shape of a section naming a DICOM peer (`DicomPeerSettings`). Each
agent's root settings class (`sending_site.settings`, `receiving_site.settings`) adds its own
sections around these."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from site_agent.errors import AgentError
from site_agent.relay_address import relay_address, require_secure
from site_agent.settings.kinds import (
    HOURS,
    MINUTES,
    AETitle,
    Duration,
    HostPort,
    NetworkList,
    Port,
    Url,
)
from site_agent.settings.schema import setting

MIN_IDLE_TIMEOUT = 1 * MINUTES
MAX_IDLE_TIMEOUT = 12 * HOURS  # one shift; a console left signed in longer is left unattended


@dataclass(frozen=True)
class RelaySettings:
    url: Url = setting("", "The relay's address, e.g. https://relay.example.", required=True)
    credential_file: Path | None = setting(
        None,
        "File holding this site's relay credential, as `trauma-relay site add` printed it; "
        "empty: read it from TRAUMA_RELAY_CREDENTIAL.",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """An address every request would fail on is refused when the agent starts, not when
        staff first send or redeem."""
        if self.url:
            try:
                require_secure(relay_address(self.url))
            except AgentError as e:
                yield "url", e.detail


@dataclass(frozen=True)
class StateSettings:
    folder: Path = setting(
        Path("/var/lib/trauma-relay"),
        "The agent's state folder (the same as --state for push and redeem). It holds what the "
        "agent resumes after a restart, the console's accounts and its audit log; back it up.",
    )


@dataclass(frozen=True)
class ConsoleSettings:
    listen: HostPort = setting(
        HostPort("127.0.0.1", 8760),
        "Address and port the console serves its pages on. Any address other than this "
        "machine's own (127.0.0.1) needs https: tls_certificate and tls_key, or public_url.",
    )
    site_name: str = setting(
        "", "Shown at the top of every page, e.g. St. Mary's Emergency Department."
    )
    idle_timeout: Duration = setting(
        30 * MINUTES,
        "A signed-in user is signed out after this long without using the console (1m to 12h).",
    )
    public_url: Url = setting(
        "",
        "The console's address as staff's browsers reach it, when a proxy in front serves "
        "https, e.g. https://traumarelay.hospital.local; empty: the address it is served on.",
    )
    trusted_proxies: NetworkList = setting(
        (),
        'The proxies in front of the console (addresses or networks, e.g. ["127.0.0.1"]): from '
        "them, where staff connect from is taken from X-Forwarded-For, for the sign-in throttle "
        "and the audit log; from any other peer that header is ignored. Empty: no proxy.",
    )
    tls_certificate: Path | None = setting(
        None, "PEM certificate chain, to serve https directly; empty: plain http."
    )
    tls_key: Path | None = setting(None, "The PEM private key of tls_certificate.")

    @property
    def https(self) -> bool:
        """Whether browsers reach the console over https (directly or through a proxy)."""
        return self.tls_certificate is not None or self.public_url.startswith("https://")

    def problems(self) -> Iterator[tuple[str, str]]:
        if (self.tls_certificate is None) != (self.tls_key is None):
            yield "tls_key", "set both tls_certificate and tls_key, or neither."
        if not MIN_IDLE_TIMEOUT <= self.idle_timeout <= MAX_IDLE_TIMEOUT:
            yield "idle_timeout", f"must be from 1m to 12h, not {self.idle_timeout:g} seconds."
        if not self.listen.is_loopback and not self.https:
            yield (
                "listen",
                f"{self.listen} can be reached from other machines, so passwords would cross "
                "the network unencrypted. Set console.tls_certificate and console.tls_key, or "
                "console.public_url to the https address of the proxy in front, or listen on "
                "127.0.0.1.",
            )


@dataclass(frozen=True)
class DicomPeerSettings:
    """A DICOM node the agent calls (a PACS, a worklist); the section's help says which, and
    its default gives the usual AE title."""

    ae_title: AETitle = setting("PACS", "Its AE title.")
    host: str = setting("", "Its host name or address; empty: not used.")
    port: Port = setting(104, "Its DICOM port.")
