"""What a site agent refuses, in sentences staff can act on: the relay client, the local set-up
(settings, the site credential) and the console's accounts."""

from __future__ import annotations

from typing import Any, Self, TypeGuard

from transfer_codes.messages import from_docstring
from transfer_codes.wire import Problem


class AgentError(Exception):
    """The site agent could not reach an agreement with the relay."""

    def __init__(self, detail: str | None = None, *, console: str | None = None) -> None:
        super().__init__(detail or from_docstring(type(self)))
        self._console = console

    @property
    def detail(self) -> str:
        return str(self.args[0])

    @property
    def for_console(self) -> str:
        """The same sentence as a console says it, where the command line's names a command
        to run again and the console has a field or a button for it."""
        return self._console or self.detail

    @property
    def message(self) -> str:
        return self.detail

    @property
    def definitive(self) -> bool:
        """Whether trying the same again cannot cure it, so a console offers no "Try again" (as
        `sending_site.errors.SendingError.definitive`). False here: the network, this site's
        set-up (its settings, its credential) and the relay's own trouble can all be fixed
        while the work waits."""
        return False


class RelayUnreachable(AgentError):
    """The relay could not be reached. Check the address and the network, then try again."""

    def __init__(
        self,
        detail: str | None = None,
        reason: str = "",
        *,
        console: str | None = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(detail, console=console)
        self.reason = reason  # why, in words (`site_agent.unreachable.reason`); "" if not known
        # No connection could be opened, so the request never reached the relay: even one that
        # is not safe to repeat (creating a transfer) may be sent again (`unreachable.unsent`).
        self.unsent = unsent

    def before_asking(self) -> RelayUnreachable:
        """This failure, of a read made before the request that changes something was sent
        (a status read first): nothing was asked of the relay yet, so it is `unsent`, whatever
        became of the read itself."""
        return RelayUnreachable(self.detail, self.reason, console=self._console, unsent=True)


def outcome_unknown(error: BaseException) -> TypeGuard[RelayUnreachable]:
    """Whether `error` says a request left for the relay and no answer came: the relay may have
    done it or not (an audit record says `unknown`, not refused)."""
    return isinstance(error, RelayUnreachable) and not error.unsent


# The relay's refusals of what was asked itself, not of how or when: the same request is
# refused again whatever is fixed meanwhile at the site or the relay.
DEFINITIVE_PROBLEMS = frozenset(
    {
        # Not UNKNOWN_SITE: the relay answers it also for a trauma center its operator disabled
        # for a while (`site disable`, undone by `site enable`), and then trying again works.
        Problem.BAD_REQUEST,
        Problem.TOO_LARGE,  # more than this relay keeps for a transfer or a site
        Problem.NOT_FOUND,  # the transfer is no longer there
        Problem.EXPIRED,
        Problem.REVOKED,
        Problem.ALREADY_REDEEMED,
        Problem.CODE_NOT_ACCEPTED,
        Problem.SITE_EXISTS,
    }
)


class RelayRefused(AgentError):
    """The relay refused the request."""

    def __init__(self, status: int, code: str, detail: str, extra: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code  # a `transfer_codes.wire.Problem` value when the relay itself refused
        self.extra = extra

    @property
    def definitive(self) -> bool:
        """By the relay's own problem code (`DEFINITIVE_PROBLEMS`), never its sentence: a proxy
        in front of it may refuse for reasons of its own, which can be fixed meanwhile."""
        return self.code in DEFINITIVE_PROBLEMS


class CredentialMissing(AgentError):
    """No site credential: set TRAUMA_RELAY_CREDENTIAL or pass --credential-file FILE."""

    @classmethod
    def in_settings(cls, setting: str) -> Self:
        """As an agent run from its settings says it, where `setting` (the key as its settings
        file writes it, and its environment variable) names the credential's file, and a
        setting changed is read when the agent starts."""
        return cls(
            f"No site credential: set {setting} to the file holding the credential `trauma-relay "
            "site add` printed, or set TRAUMA_RELAY_CREDENTIAL; then start the agent again.",
            console="This agent has no site credential, so nothing can reach the relay. Ask "
            f"its administrator to set {setting} to the file holding it, then to start the "
            "agent again.",
        )


class CredentialUnreadable(AgentError):
    """The site credential file could not be read. Check its path and permissions."""


class CredentialMalformed(AgentError):
    """The site credential holds more than the one line `trauma-relay site add` printed."""


class CertificateAuthorityUnreadable(AgentError):
    """The certificate authority file in TRAUMA_RELAY_CA_FILE could not be read."""


class RelayCertificateRefused(AgentError):
    """The relay's certificate is not one this machine trusts. If the relay's operator uses a
    private certificate authority, set TRAUMA_RELAY_CA_FILE to its certificate."""


class CleartextRelay(AgentError):
    """That relay address is plain http:// to another machine. Give its https:// address."""


class RelayRedirected(AgentError):
    """The relay answered with a redirect; trauma-relay does not follow one with this site's
    credential. Give the relay's own address."""


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


class SettingInvalid(AgentError):
    """A setting is invalid. Fix it in the configuration file, the environment or --set, then
    start the agent again."""


class ConfigUnreadable(AgentError):
    """The configuration file could not be read. Check its path and permissions."""


class AccountError(AgentError):
    """The console account could not be changed."""


class UserNameRefused(AccountError):
    """A user name is 1 to 64 letters, digits, dots, dashes, underscores or @, starting with a
    letter or digit."""


class UserExists(AccountError):
    """There is already a console account with that name. To give it a new password, use
    `user password NAME`."""


class UserUnknown(AccountError):
    """There is no console account with that name. `user list` shows the accounts."""


class PasswordRefused(AccountError):
    """That password cannot be used: it needs at least 15 characters (a few ordinary words in a
    row are easy to type and hard to guess), and must not be the user name."""


class PasswordsDiffer(AccountError):
    """The two passwords typed were not the same. Nothing was changed; run the command again."""


class AccountsUnreadable(AccountError):
    """The console's account file could not be read. Check the state folder's permissions; if
    the file was damaged, restore it from a backup or remove it and add the accounts again."""
