"""Giving up a transfer: when a journal can no longer be resumed, when a later push replaces it,
and when a push fails for good. The code of a given-up transfer may already be with the patient,
so a live one is revoked on the relay before its journal is marked `abandoned`; a transient
network failure never gives a transfer up (the user runs the same command again and resumes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sending_site import errors, journal, refused
from sending_site.collect import Collection
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes.codes import RedemptionCode
from transfer_codes.wire import Problem, TransferState

LOCKED = "its code was locked after too many wrong tries"
# States in which the relay will never take the rest of an upload, or the code is dead (and
# revoked, worded by who revoked it: `refused.reason`). A locked transfer still takes uploads,
# but resuming it would show a dead code again.
_GONE: dict[str, str] = {
    TransferState.EXPIRED: "it expired",
    TransferState.LOCKED: LOCKED,
}
REPLACED = "the files changed, and this transfer replaces it"
# Refusals that mean the relay has nothing left to revoke or resume.
_DEAD = (Problem.NOT_FOUND, Problem.EXPIRED, Problem.REVOKED)


@dataclass(frozen=True)
class Abandoned:
    """An earlier transfer this push gave up: its code no longer works."""

    transfer_id: str
    code: str  # grouped, as it was printed
    reason: str  # why, as a clause: "it expired"
    redeemed: bool = False  # too late to revoke: the trauma center had already redeemed it


def patient_digest(c: Collection) -> str:
    """What `TransferJournal.patient` holds for this collection's (single) patient."""
    first = c.instances[0]
    who = "\0".join((first.patient_id, first.issuer_of_patient_id, first.patient_name))
    return hashlib.sha256(who.encode("utf-8")).hexdigest()


async def relay_status(
    client: RelayClient, record: journal.TransferJournal
) -> dict[str, Any] | None:
    """The relay's status document of `record`, or None when the relay has no record of it.
    Network failures and other refusals propagate."""
    try:
        status: dict[str, Any] = await client.status(record.transfer_id)
    except RelayRefused as e:
        if e.code == Problem.NOT_FOUND:
            return None
        raise
    return status


def why_gone(status: dict[str, Any] | None) -> str:
    """Why the relay can no longer finish a transfer with this status (revoked, and by whom;
    expired, locked, unknown), or "" when it can."""
    if status is None:
        return "the relay has no record of it"
    if status["state"] == TransferState.REVOKED:
        return refused.reason(status)
    return _GONE.get(str(status["state"]), "")


async def why_not_resumable(client: RelayClient, record: journal.TransferJournal) -> str:
    """`why_gone` of `record` as the relay has it now."""
    return why_gone(await relay_status(client, record))


async def refused_by_patient(
    client: RelayClient, record: journal.TransferJournal, error: Exception
) -> dict[str, Any] | None:
    """The relay's status of `record` if `error` (raised while sending it) came from the patient
    or family having revoked it on their phone (`refused.by_patient`), else None. Asking the
    relay may fail too: then None, and the caller goes on as it would have."""
    if not isinstance(error, RelayRefused) or error.code not in (
        Problem.REVOKED,
        Problem.INVALID_STATE,
    ):
        return None
    try:
        status = await relay_status(client, record)
    except (RelayRefused, RelayUnreachable):
        return None
    return status if status is not None and refused.by_patient(status) else None


async def give_up(
    client: RelayClient,
    state_dir: Path,
    record: journal.TransferJournal,
    reason: str,
    *,
    revoke: bool = True,
) -> Abandoned:
    """Revoke `record` on the relay (already revoked, expired or unknown is fine; `revoke`
    False when the relay just said so) and mark its journal abandoned. `RelayUnreachable` and
    other refusals propagate with the journal as it was, so the next run tries again."""
    redeemed = False
    try:
        if revoke:
            await client.revoke(record.transfer_id)
    except RelayRefused as e:
        if e.code == Problem.ALREADY_REDEEMED:
            redeemed = True
            reason += "; the trauma center had already redeemed it"
        elif e.code not in _DEAD:
            raise
    record.done = True
    record.abandoned = reason
    journal.save(state_dir, record)
    code = RedemptionCode.parse(record.code).grouped()
    return Abandoned(record.transfer_id, code, reason, redeemed)


def superseded(state_dir: Path, current: journal.TransferJournal) -> list[journal.TransferJournal]:
    """Unfinished journals that `current` replaces: same relay and trauma center, at least one
    file path in common, and the same patient (or a journal too old to say whose it was). A
    disc of another patient read from the same drive is not a replacement."""
    return [
        old
        for old in journal.unfinished(state_dir)
        if old.transfer_id != current.transfer_id
        and (old.relay, old.recipient) == (current.relay, current.recipient)
        and old.paths() & current.paths()
        and old.patient in ("", current.patient)
    ]


async def failure_reason(
    client: RelayClient, record: journal.TransferJournal, error: Exception
) -> str | None:
    """Why `error`, raised while sending `record`, means the transfer can never be finished,
    or None when running the same command again may succeed (network, credentials, the
    relay's own trouble, a checksum to send again)."""
    if isinstance(error, errors.FileChanged):
        return "its files changed while they were being sent"
    if not isinstance(error, RelayRefused):
        return None
    # Only the relay's own problem codes: a proxy in front of it may refuse for its own reasons
    # (a body size limit, say), which can be fixed while the transfer waits.
    if error.code in _DEAD:
        return "the relay no longer has it"
    if error.code in (
        Problem.BAD_REQUEST,
        Problem.TOO_LARGE,
    ):  # the same request would be refused again
        return "the relay refused part of it"
    if error.status == 409 and error.code == Problem.INVALID_STATE:
        # Also what a second push of the same files running at the same time can meet: give
        # up only if the relay says the transfer takes no more uploads (a locked one does).
        try:
            why = await why_not_resumable(client, record)
        except (RelayRefused, RelayUnreachable):
            return None
        return why if why and why != LOCKED else None
    return None
