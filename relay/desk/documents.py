"""What the relay tells about a transfer: the status document (sites) and the phone's document
(patient or family). States are reported as `Transfer.state_at(now)`."""

from __future__ import annotations

import json

from relay.desk.visit import Desk
from relay.lifecycle import Authorizer, State, Transfer
from relay.storage.interface import MetadataTransaction
from transfer_codes.wire import DISCARDED, b64encode_text

# What the phone says about each state, in plain words (shown as is).
EXPLANATIONS = {
    State.CREATED: "The emergency department is still preparing this transfer. "
    "Try again in a minute.",
    State.AWAITING_AUTHORIZATION: "Nothing has been shared yet. Read what would be shared and "
    "with whom, then decide.",
    State.AUTHORIZED: "The transfer is authorized. Give this code to the trauma center: show it, "
    "read it aloud, or let them scan the QR code.",
    State.REDEEMED: "The trauma center has taken the images and is checking them.",
    State.DELIVERED: "The images are stored at the trauma center, ready for the doctors.",
    State.EXPIRED: "This transfer has expired and its images were deleted from the relay. If "
    "the trauma center still needs them, ask the emergency department to send them again.",
    State.REVOKED: "This transfer was cancelled, so nobody can take the images. If that was a "
    "mistake, ask the emergency department to send them again.",
    State.LOCKED: "Too many wrong codes were tried, so this transfer is locked to keep it safe. "
    "The emergency department can give the trauma center a new code; nothing has to be sent "
    "again.",
}
DISCARDED_AFTER_REVIEW = (
    "The trauma center checked the images and set them aside. If they still need them, the "
    "emergency department can send them again."
)
DECLINED = (
    "Nothing was shared: the patient or family chose not to share these images, so the trauma "
    "center will not receive them through this service. The emergency department sees this "
    "decision."
)


def _sealed(data: bytes | None) -> str | None:
    """A sealed blob as the wire carries it (base64), passed on opaque."""
    return b64encode_text(data) if data else None


def _revocation(t: Transfer) -> dict[str, object]:
    """When and by whom the transfer was revoked, and whether that was the patient or family
    declining (before anyone authorized)."""
    return {
        "revoked_at": t.revoked_at,
        "revoked_by": t.revoked_by.value if t.revoked_by else None,
        "declined": t.was_declined(),
    }


def _authorization(t: Transfer) -> dict[str, object]:
    return {
        "authorized_at": t.authorized_at,
        "authorized_by": t.authorized_by.value if t.authorized_by else None,
        "break_glass": t.authorized_by == Authorizer.BREAK_GLASS,
    }


async def status_document(tx: MetadataTransaction, t: Transfer, now: float) -> dict[str, object]:
    """A transfer's status for its sender or recipient: states, times and counts, no PHI."""
    objects = await tx.object_statuses(t.id)
    receipt = await tx.receipt(t.id)
    sender = await tx.site(t.sender)
    recipient = await tx.site(t.recipient)
    return {
        "transfer_id": t.id,
        "state": t.state_at(now).value,
        "sender": {"name": t.sender, "display_name": sender.display_name if sender else ""},
        "recipient": {
            "name": t.recipient,
            "display_name": recipient.display_name if recipient else "",
        },
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        **_authorization(t),
        "failed_attempts": t.failed_attempts,
        "redeemed_at": t.redeemed_at,
        "delivered_at": t.delivered_at,
        **_revocation(t),
        "objects_complete": sum(1 for o in objects if o.complete),
        "manifest_closed": await tx.manifest_closed(t.id),
        "receipt": json.loads(receipt) if receipt else None,
        "consent_from_sending_site": await tx.consent_from_sender(t.id),
    }


async def phone_document(tx: MetadataTransaction, t: Transfer, now: float) -> dict[str, object]:
    """What the phone shows: the state in plain words, who sends and receives, the sealed
    summary and authorizer, and (only while authorized) the sealed code."""
    state = t.state_at(now)
    sender = await tx.site(t.sender)
    recipient = await tx.site(t.recipient)
    recipient_name = recipient.display_name if recipient else t.recipient
    receipt = await tx.receipt(t.id)
    summary = await tx.phone_blob(t.id, "summary")
    code = await tx.phone_blob(t.id, "code") if state == State.AUTHORIZED else None
    sealed_authorizer = await tx.phone_blob(t.id, "authorizer")
    delivered: dict[str, object] | None = None
    counts = json.loads(receipt) if receipt is not None else {}
    discarded_at = (
        counts.get("received_at")
        if state == State.REDEEMED and counts.get("destination") == DISCARDED
        else None
    )
    explanation = EXPLANATIONS[state]
    if t.was_declined():
        explanation = DECLINED
    elif discarded_at is not None:
        explanation = DISCARDED_AFTER_REVIEW
    if receipt is not None and state == State.DELIVERED:
        delivered = {
            "instances": counts.get("instances"),
            "destination": counts.get("destination"),
            "complete": counts.get("complete"),
        }
    return {
        "state": state.value,
        "explanation": explanation,
        "sender": {"display_name": sender.display_name if sender else t.sender},
        "recipient": {"display_name": recipient_name},
        "expires_at": t.expires_at,
        **_authorization(t),
        "redeemed_at": t.redeemed_at,
        "redeemed_by": recipient_name if t.redeemed_at is not None else None,
        "delivered_at": t.delivered_at,
        "delivered": delivered,
        "discarded_at": discarded_at,  # set aside at the trauma center after review
        **_revocation(t),
        "can_revoke": t.can_revoke(now),
        "summary": _sealed(summary),
        "code": _sealed(code),
        "authorizer": _sealed(sealed_authorizer),
    }


async def status(d: Desk, transfer_id: str) -> dict[str, object]:
    """The status document of a transfer the caller may see (`NotFound` otherwise), audited."""
    t = await d.visible(transfer_id)
    document = await status_document(d.tx, t, d.now)
    await d.record("status-read", t.id)
    return document
