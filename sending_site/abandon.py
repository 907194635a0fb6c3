"""Giving up a transfer, as rules: what the relay's answers mean for an earlier or a running
transfer, in the clause the ER reads ("it expired"). Pure; `plan.PushPlan` applies them and
`push` carries out the revocation.

A given-up transfer's code may already be with the patient, so a live one is revoked before its
journal is marked `abandoned`; a transient network failure never gives a transfer up (the user
runs the same command again and resumes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sending_site import errors, refused
from site_agent.dicom_text import date, person_name
from site_agent.errors import RelayRefused
from transfer_codes.wire import DISCARDED, Problem, TransferState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sending_site.collect import Collection

LOCKED = "its code was locked after too many wrong tries"
NO_RECORD = "the relay has no record of it"
DISCARDED_THERE = "the trauma center discarded it after review"
# States in which the relay will never take the rest of an upload, or the code is dead. A
# locked transfer still takes uploads, but resuming it would show a dead code again.
_GONE: dict[str, str] = {
    TransferState.EXPIRED: "it expired",
    TransferState.LOCKED: LOCKED,
}
REPLACED = "the files changed, and this transfer replaces it"
SENT_INCOMPLETE = "it was sent incomplete, and this transfer replaces it"
REPLACED_AS_ASKED = "this transfer replaces it, as asked with --replace"
SAME_FILES = "the same files go in the transfer resumed now"
ALREADY_REDEEMED = "; the trauma center had already redeemed it"
REVOKED_HERE = "revoked here with trauma-relay revoke"
# The reasons above that name the command line's command or option, as the ER console says
# them (it has buttons instead).
_AT_CONSOLE = {
    REVOKED_HERE: "revoked here",
    REPLACED_AS_ASKED: "this transfer replaces it, sent as a new transfer",
}


def reason_at_console(reason: str) -> str:
    """Why a transfer was given up (`TransferJournal.abandoned`), as the ER console says it:
    without a command or option of the command line (a suffix such as `ALREADY_REDEEMED` kept).
    """
    for cli, console in _AT_CONSOLE.items():
        if reason.startswith(cli):
            return console + reason[len(cli) :]
    return reason


# Refusals that mean the relay has nothing left to revoke or resume.
_DEAD = (Problem.NOT_FOUND, Problem.EXPIRED, Problem.REVOKED)


@dataclass(frozen=True)
class Abandoned:
    """An earlier transfer this push gave up: its code no longer works."""

    transfer_id: str
    code: str  # grouped, as it was printed
    reason: str  # why, as a clause: "it expired"
    redeemed: bool = False  # too late to revoke: the trauma center had already redeemed it


@dataclass(frozen=True)
class Seen:
    """A transfer as the relay's status document describes it to its sender."""

    state: str
    authorized_by: str | None = None  # patient | family | break_glass
    break_glass: bool = False
    sender: str = ""  # the sending site's name
    sender_display_name: str = ""
    recipient_display_name: str = ""
    delivered_at: float | None = None
    receipt: Mapping[str, Any] | None = None  # what the trauma center reported it stored
    revoked_by: str | None = None  # patient | family | sending_site, once revoked
    declined: bool = False  # revoked by the patient or family before anyone authorized
    revoked_at: float | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> Seen:
        return cls(
            state=str(status["state"]),
            authorized_by=status.get("authorized_by"),
            break_glass=bool(status.get("break_glass")),
            sender=str(status["sender"]["name"]),
            sender_display_name=str(status["sender"]["display_name"] or ""),
            recipient_display_name=str(status["recipient"]["display_name"] or ""),
            delivered_at=status.get("delivered_at"),
            receipt=status.get("receipt"),
            revoked_by=status.get("revoked_by"),
            declined=bool(status.get("declined")),
            revoked_at=status.get("revoked_at"),
        )

    @property
    def revocation(self) -> dict[str, Any]:
        """The status fields `sending_site.refused` words a revocation from."""
        return {
            "state": self.state,
            "revoked_by": self.revoked_by,
            "declined": self.declined,
            "revoked_at": self.revoked_at,
        }

    @property
    def by_patient(self) -> bool:
        """The patient or their family revoked it on their phone (declined or cancelled)."""
        return refused.by_patient(self.revocation)

    @property
    def consented(self) -> bool:
        """The patient or family authorized: break-glass is neither needed nor accepted."""
        return self.authorized_by in ("patient", "family")


@dataclass(frozen=True)
class NoAnswer:
    """The relay could not say how a transfer stands (out of reach, or it refused to say)."""


def patient_digest(c: Collection) -> str:
    """What `TransferJournal.patient` holds for this collection's (single) patient."""
    first = c.instances[0]
    who = "\0".join((first.patient_id, first.issuer_of_patient_id, first.patient_name))
    return hashlib.sha256(who.encode("utf-8")).hexdigest()


def patient_label(c: Collection) -> str:
    """What `TransferJournal.patient_label` holds for this collection's (single) patient."""
    first = c.instances[0]
    record = f", record {first.patient_id}" if first.patient_id else ""
    born = f", born {date(first.patient_birth_date)}" if first.patient_birth_date else ""
    return f"{person_name(first.patient_name)}{record}{born}"


def study_digest(study_instance_uid: str) -> str:
    """What `TransferJournal.studies` holds for one study."""
    return hashlib.sha256(study_instance_uid.encode("utf-8")).hexdigest()


def study_digests(c: Collection) -> frozenset[str]:
    """What `TransferJournal.studies` holds for this collection."""
    return frozenset(study_digest(uid) for uid in {i.study_instance_uid for i in c.instances})


def discarded_there(state: str, receipt: object) -> bool:
    """Whether the relay describes a transfer the trauma center discarded after review: still
    redeemed there, with a receipt saying so; its code is spent and nothing more is imported."""
    return (
        state == TransferState.REDEEMED
        and isinstance(receipt, dict)
        and receipt.get("destination") == DISCARDED
    )


def gone_reason(seen: Seen | None) -> str:
    """Why the relay can no longer finish a transfer it described as `seen` (None: it has no
    record of it), or "" when it can."""
    if seen is None:
        return NO_RECORD
    if seen.state == TransferState.REVOKED:
        return refused.reason(seen.revocation)  # and by whom
    if discarded_there(seen.state, seen.receipt):
        return DISCARDED_THERE  # its code is spent, and nothing more of it will be imported
    return _GONE.get(seen.state, "")


def revoke_refusal(error: Exception) -> str | None:
    """What a failed revocation means: "" when the transfer is gone anyway, `ALREADY_REDEEMED`
    when it is too late to revoke, None when it was not revoked and the next run must try
    again (the relay out of reach, or refusing for another reason)."""
    if isinstance(error, RelayRefused):
        if error.code == Problem.ALREADY_REDEEMED:
            return ALREADY_REDEEMED
        if error.code in _DEAD:
            return ""
    return None


def failure_reason(error: Exception, seen: Seen | NoAnswer | None) -> str | None:
    """Why `error`, raised while sending a transfer the relay then described as `seen`, means
    it can never be finished, or None when running the same command again may succeed
    (network, credentials, the relay's own trouble, a checksum to send again)."""
    if isinstance(error, errors.FileChanged):
        return "its files changed while they were being sent"
    if not isinstance(error, RelayRefused):
        return None
    # Only the relay's own problem codes: a proxy in front of it may refuse for its own reasons
    # (a body size limit, say), which can be fixed while the transfer waits.
    if error.code in _DEAD:
        return "the relay no longer has it"
    if error.code in (Problem.BAD_REQUEST, Problem.TOO_LARGE):  # refused again if repeated
        return "the relay refused part of it"
    if error.status == 409 and error.code == Problem.INVALID_STATE:
        # Also what a second push of the same files running at the same time can meet: give
        # up only if the relay says the transfer takes no more uploads (a locked one does).
        if isinstance(seen, NoAnswer):
            return None
        why = gone_reason(seen)
        return why if why and why != LOCKED else None
    return None
