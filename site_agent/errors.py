"""What a site agent's relay client and local set-up refuse, in sentences staff can act on."""

from __future__ import annotations

from typing import Any

from transfer_codes.messages import from_docstring


class AgentError(Exception):
    """The site agent could not reach an agreement with the relay."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or from_docstring(type(self)))

    @property
    def detail(self) -> str:
        return str(self.args[0])

    @property
    def message(self) -> str:
        return self.detail


class RelayUnreachable(AgentError):
    """The relay could not be reached. Check the address and the network, then try again."""

    def __init__(self, detail: str | None = None, reason: str = "") -> None:
        super().__init__(detail)
        self.reason = reason  # why, in words (`site_agent.unreachable.reason`); "" if not known


class RelayRefused(AgentError):
    """The relay refused the request."""

    def __init__(self, status: int, code: str, detail: str, extra: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code  # a `transfer_codes.wire.Problem` value when the relay itself refused
        self.extra = extra


class CredentialMissing(AgentError):
    """No site credential: set TRAUMA_RELAY_CREDENTIAL or pass --credential-file FILE."""


class CredentialUnreadable(AgentError):
    """The site credential file could not be read. Check its path and permissions."""


class BadRelayAddress(AgentError):
    """That is not a relay address. Give the scheme, the host and, if needed, the port, e.g.
    https://relay.example."""


class StateFolderUnusable(AgentError):
    """This site's state folder cannot be used. Check --state (or TRAUMA_RELAY_STATE): it must be
    a folder this user can write."""


class RelayNotSet(AgentError):
    """No relay address was given. Give --relay URL, set TRAUMA_RELAY_URL, or write
    relay = "https://relay.example" into config.toml in the state folder."""


class SettingsUnreadable(AgentError):
    """The settings file could not be read. Check its path and contents, or give --relay."""
