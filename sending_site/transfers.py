"""This site's transfers as the ER follows them (`trauma-relay transfers`), and revoking one
(`trauma-relay revoke`). The list comes from the local journals; each transfer's status comes
from its relay, which holds no PHI, so the list says where, when and how many, never who.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sending_site import abandon, errors, journal, refusals, refused
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from site_agent.dicom_text import how_many_images
from transfer_codes.wire import Problem, TransferState

UNKNOWN_STATE = "unknown"
REVOKED_HERE = abandon.REVOKED_HERE
_WHERE = {"pacs": "into the trauma center's PACS", "folder": "into a folder at the trauma center"}
# Live states in which the rest of an unfinished upload is still wanted.
OVER = {TransferState.DELIVERED, TransferState.EXPIRED, TransferState.REVOKED}
_UPLOADING = {
    TransferState.CREATED,
    TransferState.AWAITING_AUTHORIZATION,
    TransferState.AUTHORIZED,
    TransferState.LOCKED,
    TransferState.REDEEMED,
}


def when(epoch: float | None) -> str:
    """A moment in this computer's local time, with its zone: "2025-06-01 14:02 CEST"."""
    if epoch is None:
        return "(time not known)"
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class TransferView:
    """One transfer as `trauma-relay transfers` shows it."""

    transfer_id: str
    recipient: str  # the trauma center's display name (or name)
    state: str  # the relay's state name, or "unknown" when the relay could not say
    status: str  # the state in words, with the receipt when delivered
    created_at: float | None
    expires_at: float | None
    upload_finished: bool
    receipt: dict[str, Any] | None = None
    patient: str = ""  # `TransferJournal.patient_label`; empty for older journals

    def to_json(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "patient": self.patient,
            "recipient": self.recipient,
            "state": self.state,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "upload_finished": self.upload_finished,
            "receipt": self.receipt,
        }


def _receipt_words(receipt: dict[str, Any] | None, delivered_at: float | None) -> str:
    if not receipt:
        return f"delivered {when(delivered_at)}"
    where = _WHERE.get(str(receipt.get("destination")), "at the trauma center")
    partly = "" if receipt.get("complete", True) else " (not all of them)"
    at = receipt.get("received_at", delivered_at)
    instances = receipt.get("instances")
    count = how_many_images(instances) if isinstance(instances, int) else "? images"
    words = f"delivered {when(at)}: {count}{partly} {where}"
    decompressed = receipt.get("decompressed")
    if isinstance(decompressed, int) and decompressed > 0:
        words += f", {decompressed} decompressed"
    if receipt.get("reconciled") is True:
        words += ", filed under the local record"
    return words


def _discard_words(receipt: dict[str, Any], at_console: bool) -> str:
    stored = receipt.get("instances")
    in_pacs = (
        f"{stored} of its images were already in their PACS, which has the study INCOMPLETE"
        if isinstance(stored, int) and stored > 0
        else "none of its images went into their PACS"
    )
    again = "send the study again" if at_console else "run the same push again"
    return (
        f"discarded at the trauma center {when(receipt.get('received_at'))} after review; "
        f"{in_pacs}. Call them; if they still need the images, {again}: it goes as a new "
        "transfer, with a new code"
    )


def _review_copy(receipt: object) -> bool:
    """A receipt saying the trauma center saved a held study for review (not delivered)."""
    return isinstance(receipt, dict) and receipt.get("destination") == "review"


def status_words(
    status: dict[str, Any],
    record: journal.TransferJournal,
    *,
    uploading: bool = False,
    at_console: bool = False,
    code_note: bool = True,
) -> str:
    """What the relay's status document means for the ER, in one line; `uploading`: its push
    is running now (in the agent), so nothing needs to be run again; `at_console`: said in the
    ER console, which has buttons where the command line has commands; `code_note`: a code
    the relay may not have taken is said too (`unconfirmed_words`; the transfer's page says
    it in the code's place instead)."""
    state = str(status.get("state", ""))
    words: str
    if state == TransferState.CREATED:
        words = "not started: its code was never activated"
    elif state == TransferState.AWAITING_AUTHORIZATION:
        words = "awaiting authorization by the patient or family"
    elif state == TransferState.AUTHORIZED:
        by = (
            "BREAK-GLASS (a clinician)"
            if status.get("break_glass")
            else f"the {status.get('authorized_by') or 'patient or family'}"
        )
        words = f"authorized by {by} {when(status.get('authorized_at'))}; not redeemed yet"
    elif state == TransferState.LOCKED:
        words = "locked after too many wrong codes: " + (
            "Give a new code to unlock it"
            if at_console
            else f"trauma-relay reissue {record.transfer_id} gives it a new code"
        )
    elif abandon.discarded_there(state, status.get("receipt")):
        words = _discard_words(status["receipt"], at_console)
    elif state == TransferState.REDEEMED and _review_copy(status.get("receipt")):
        since = when(status["receipt"].get("received_at"))
        words = (
            f"held at the trauma center for review since {since}: a person is checking the "
            "patient's identity before it goes into their PACS"
        )
    elif state == TransferState.REDEEMED:
        words = (
            f"redeemed by the trauma center {when(status.get('redeemed_at'))}; not delivered "
            "yet (being checked and stored)"
        )
    elif state == TransferState.DELIVERED:
        words = _receipt_words(status.get("receipt"), status.get("delivered_at"))
    elif state == TransferState.REVOKED:
        words = f"revoked {when(status.get('revoked_at'))}"
        if refused.by_patient(status):
            words += f": {refused.reason(status)}"
    elif state == TransferState.EXPIRED:
        words = f"expired {when(status.get('expires_at'))}: its images are deleted"
    else:
        words = state.replace("_", " ") or UNKNOWN_STATE
    if record.abandoned and record.abandoned != REVOKED_HERE:
        reason = abandon.reason_at_console(record.abandoned) if at_console else record.abandoned
        words += f" (given up: {reason})"
    elif (
        not record.done
        and state in _UPLOADING
        and not abandon.discarded_there(state, status.get("receipt"))
    ):
        if uploading:
            words += "; uploading"
        elif at_console:
            words += "; upload not finished: Upload again to finish it"
        else:
            words += "; upload not finished: run the same push again to finish it"
    if code_note and state in _CODE_WANTED:
        words += unconfirmed_words(record, at_console)
    return words


# The states in which the transfer's code is still wanted (the relay takes a new one).
_CODE_WANTED = {
    TransferState.AWAITING_AUTHORIZATION,
    TransferState.AUTHORIZED,
    TransferState.LOCKED,
}


def unconfirmed_words(record: journal.TransferJournal, at_console: bool) -> str:
    """ "; the new code may not have reached the relay..." when a re-issue of `record` had no
    answer (`TransferJournal.code_confirmed`) and it was not given up; else ""."""
    if record.code_confirmed or record.abandoned:
        return ""
    said = refusals.unconfirmed(record.transfer_id)
    sentence = said.console if at_console else said.cli
    return f"; {sentence[0].lower()}{sentence[1:]}"


def view(
    record: journal.TransferJournal,
    status: dict[str, Any],
    *,
    uploading: bool = False,
    at_console: bool = False,
) -> TransferView:
    recipient = status.get("recipient") or {}
    return TransferView(
        transfer_id=record.transfer_id,
        recipient=str(
            recipient.get("display_name") or record.recipient_display_name or record.recipient
        ),
        state=str(status.get("state", UNKNOWN_STATE)),
        status=status_words(status, record, uploading=uploading, at_console=at_console),
        created_at=status.get("created_at"),
        expires_at=status.get("expires_at", record.expires_at),
        upload_finished=record.done and not record.abandoned,
        receipt=status.get("receipt"),
        patient=record.patient_label,
    )


def unknown(record: journal.TransferJournal, why: str, *, at_console: bool = False) -> TransferView:
    """A transfer whose relay could not say how it stands (a code the relay may not have
    taken is said too, as `status_words` says it)."""
    return TransferView(
        record.transfer_id,
        record.recipient_display_name or record.recipient,
        UNKNOWN_STATE,
        why + unconfirmed_words(record, at_console),
        None,
        record.expires_at,
        record.done and not record.abandoned,
        patient=record.patient_label,
    )


async def list_transfers(
    state_dir: Path,
    credential: str,
    relay: str | None = None,
    *,
    uploading: Collection[str] = (),
    at_console: bool = False,
) -> list[TransferView]:
    """Every transfer in `state_dir`'s journals with its relay's status (`relay` instead of
    each journal's own), newest first; `uploading`: the transfers whose push runs now, and
    `at_console` as `status_words` takes them. A relay that cannot be reached, or a damaged
    journal, is said in the transfer's status; it does not stop the list."""
    views: list[TransferView] = []
    clients: dict[str, RelayClient] = {}
    out_of_reach: dict[str, str] = {}
    try:
        for transfer_id in journal.transfer_ids(state_dir):
            try:
                record = journal.load(state_dir, transfer_id)
            except errors.TransferJournalError as e:
                views.append(
                    TransferView(transfer_id, "", UNKNOWN_STATE, str(e), None, None, False)
                )
                continue
            url = relay or record.relay
            if url in out_of_reach:
                views.append(unknown(record, out_of_reach[url], at_console=at_console))
                continue
            client = clients.get(url) or clients.setdefault(url, RelayClient(url, credential))
            try:
                status = await client.status(transfer_id)
                running = transfer_id in uploading
                views.append(view(record, status, uploading=running, at_console=at_console))
                shown = str((status.get("recipient") or {}).get("display_name") or "")
                record = journal.remember_recipient(state_dir, record, shown)
                state = str(status.get("state", ""))
                if state in OVER or abandon.discarded_there(state, status.get("receipt")):
                    journal.forget_secrets(state_dir, record)
            except RelayUnreachable as e:
                out_of_reach[url] = f"status not known: the relay at {url} could not be reached"
                out_of_reach[url] += f" ({e.reason})" if e.reason else ""
                views.append(unknown(record, out_of_reach[url], at_console=at_console))
            except RelayRefused as e:
                why = (
                    "the relay has no record of it (its data may have been removed)"
                    if e.code == Problem.NOT_FOUND
                    else f"status not known: {e.detail}"
                )
                views.append(unknown(record, why, at_console=at_console))
    finally:
        for client in clients.values():
            await client.close()
    return sorted(views, key=lambda v: -(v.created_at or v.expires_at or 0.0))


_ALREADY_GONE = {
    Problem.REVOKED: "was already revoked",
    Problem.EXPIRED: "has already expired",
    Problem.NOT_FOUND: "is unknown to the relay",
}


async def revoke(
    state_dir: Path, transfer_id: str, credential: str, relay: str | None = None
) -> str:
    """Revoke a transfer this site sent: its code and QR stop working and the patient's phone
    says so. Returns what happened, as a clause ("revoked", "was already revoked"...). Raises
    `AlreadyRedeemed` (nothing changed) when the trauma center has already redeemed it."""
    record = journal.load(state_dir, transfer_id)
    async with RelayClient(relay or record.relay, credential) as client:
        try:
            await client.revoke(record.transfer_id)
            outcome = "revoked"
        except RelayRefused as e:
            if e.code == Problem.ALREADY_REDEEMED:
                status = await client.status(record.transfer_id)
                raise errors.AlreadyRedeemed(
                    f"Transfer {record.transfer_id} cannot be revoked: the trauma center "
                    f"redeemed it {when(status.get('redeemed_at'))} (now "
                    f"{status_words(status, record)}). The images are with them: call them if "
                    "they must not be used."
                ) from e
            if e.code not in _ALREADY_GONE:
                raise
            outcome = _ALREADY_GONE[Problem(e.code)]
    if not record.abandoned:  # never resumed again; a later push starts a new transfer
        journal.give_up(state_dir, transfer_id, REVOKED_HERE)
    return outcome
