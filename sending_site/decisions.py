"""What a push plan (`plan.PushPlan`) is told and what it decides: frozen dataclasses that cross
the line between the pure plan and `push`, the edge that talks to the relay, reads the files and
writes the journal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sending_site.abandon import Abandoned
from sending_site.journal import JournalObject, TransferJournal

if TYPE_CHECKING:
    from site_agent.client import Holdings

# -- what the plan is given -------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What this push sends, where, and how the user asked."""

    relay: str  # without a trailing slash, as journals hold it
    recipient: str
    patient: str  # `abandon.patient_digest`
    studies: frozenset[str]  # `abandon.study_digests`
    objects: tuple[JournalObject, ...]
    replace: bool = False  # --replace: a live or delivered transfer of the study is replaced
    break_glass: tuple[str, str] | None = None  # (reason, clinician)
    # What is sent, for the transfer sheet (a re-issue prints it again from the journal).
    study_description: str = ""
    series_count: int = 0
    # A study still arriving (`PushRequest.source`): an unfinished transfer whose files are
    # all among `objects`, unchanged, is resumed and grows.
    following: bool = False
    patient_label: str = ""  # `abandon.patient_label`

    def fingerprint(self) -> list[tuple[str, int, int]]:
        return [(o.path, o.size, o.mtime_ns) for o in self.objects]


@dataclass(frozen=True)
class NewTransfer:
    """The relay's answer to creating a transfer, with the secrets the edge drew for it."""

    transfer_id: str
    locator: int
    expires_at: float
    data_key: bytes
    code: str  # compact
    capability: str
    authorization_token: str
    phone_key: str


# -- what the plan decides --------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Keys are installed: the code, QR and authorization link work from now on."""

    transfer_id: str
    code: str
    capability: str
    authorization_url: str
    expires_at: float
    resumed: bool
    recipient_display_name: str = ""
    sender_display_name: str = ""
    break_glass: bool = False
    # Break-glass added by this run (else, with `break_glass`, it had been added before): what
    # the audit log records of it (`already`, as the console's button).
    break_glass_added: bool = False
    replaced: tuple[Abandoned, ...] = ()  # earlier transfers given up: their codes are dead
    uploaded_before: bool = False  # the relay already held everything: nothing is sent again
    authorized_by: str | None = None  # patient | family | break_glass, when already authorized
    # For the transfer sheet: what is sent.
    study_description: str = ""
    series_count: int = 0
    instance_count: int = 0
    # False when a re-issue's answer never came (`TransferJournal.code_confirmed`): the code
    # may not be the relay's, so it is neither shown nor printed.
    code_confirmed: bool = True

    @property
    def authorized(self) -> bool:
        """Whether the patient or family, or a clinician by break-glass, has authorized."""
        return self.authorized_by is not None


@dataclass(frozen=True)
class Save:
    """Write this journal (the one place a push writes one)."""

    record: TransferJournal


@dataclass(frozen=True)
class GiveUp:
    """Revoke this transfer on the relay (when `revoke`), then answer `revoke_answered`."""

    record: TransferJournal
    revoke: bool


@dataclass(frozen=True)
class Create:
    """Create a transfer on the relay, draw its secrets, and answer `transfer_created`."""


@dataclass(frozen=True)
class Look:
    """Ask the relay how this transfer stands and what it holds; answer `transfer_seen`."""

    record: TransferJournal


@dataclass(frozen=True)
class InstallLocks:
    record: TransferJournal


@dataclass(frozen=True)
class AddBreakGlass:
    """Seal the reason and the clinician's name, and authorize by break-glass."""

    record: TransferJournal
    reason: str
    clinician: str


@dataclass(frozen=True)
class LeavePhoneDocuments:
    """Seal the code and the summary for the patient's phone."""

    record: TransferJournal
    break_glass: bool


@dataclass(frozen=True)
class Show:
    ready: Ready


@dataclass(frozen=True)
class Upload:
    """Seal and send what the relay does not hold, then the manifest; answer `upload_finished`
    (or `send_failed`)."""

    record: TransferJournal
    holdings: Holdings
    sender: str  # the sending site's name, for the manifest's summary
    break_glass: bool


@dataclass(frozen=True)
class Fail:
    """End the run with `error` (raised from `cause`)."""

    error: Exception
    cause: BaseException | None = None


Decision = (
    Save
    | GiveUp
    | Create
    | Look
    | InstallLocks
    | AddBreakGlass
    | LeavePhoneDocuments
    | Show
    | Upload
    | Fail
)
