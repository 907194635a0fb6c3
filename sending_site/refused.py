"""When the patient or their family said no on their phone: they declined before anyone
authorized, or cancelled after. The relay's status says who revoked a transfer (`revoked_by`:
patient, family or sending_site) and whether that was declining (`declined`); this words it for
the ER staff, with what to do next. Pure: it reads a status document the caller fetched.
"""

from __future__ import annotations

import datetime
from typing import Any

from sending_site.errors import Said
from transfer_codes.wire import TransferState

_WHO = {"patient": "the patient", "family": "the patient's family"}
TELL_THEM = "The trauma center will not receive these images through trauma-relay: let them know."


def by_patient(status: dict[str, Any]) -> bool:
    """Did the patient or their family revoke this transfer (declined or cancelled)?"""
    return status.get("state") == TransferState.REVOKED and status.get("revoked_by") in _WHO


def reason(status: dict[str, Any]) -> str:
    """Why a revoked transfer is over, as a clause: "the patient's family declined to share it
    on their phone", or "it was revoked" (by the sending site, or before the relay said who)."""
    who = _WHO.get(str(status.get("revoked_by")))
    if who is None:
        return "it was revoked"
    did = "declined to share it" if status.get("declined") else "cancelled it"
    return f"{who} {did} on their phone"


def _when(status: dict[str, Any]) -> str:
    at = status.get("revoked_at")
    if not isinstance(at, int | float):
        return ""
    local = datetime.datetime.fromtimestamp(at, tz=datetime.UTC).astimezone()
    return f" ({local.strftime('%Y-%m-%d %H:%M %Z')})"


def _what_happened(status: dict[str, Any], transfer_id: str) -> str:
    who = _WHO[str(status["revoked_by"])]
    who = who[0].upper() + who[1:]
    if status.get("declined"):
        return (
            f"{who} declined on their phone{_when(status)} to share the images of transfer "
            f"{transfer_id}"
        )
    return f"{who} cancelled transfer {transfer_id} on their phone{_when(status)}"


def for_push(status: dict[str, Any], transfer_id: str, code: str) -> Said:
    """What `push` says when it meets a transfer the patient or family revoked (`by_patient`)."""
    facts = (
        f"{_what_happened(status, transfer_id)}, so its code {code} no longer works and nothing "
        f"more was sent. {TELL_THEM} If they change their mind, "
    )
    then = ": it starts a new transfer, which they authorize on their phone."
    return Said(facts + "run the same command again" + then, facts + "send the study again" + then)


def for_reissue(status: dict[str, Any], transfer_id: str) -> Said:
    """What `reissue` says for a transfer the patient or family revoked (`by_patient`)."""
    facts = (
        f"{_what_happened(status, transfer_id)}, so its code cannot be re-issued. {TELL_THEM} If "
        "they change their mind, send the study again"
    )
    then = "; they authorize the new transfer on their phone."
    return Said(facts + " with trauma-relay push" + then, facts + " from its page" + then)
