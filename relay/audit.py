"""Audit events (DICOM PS3.15 A.5 / IHE ATNA event ids). Records carry no PHI: site names,
transfer ids, counts and outcomes only. They are written in the same transaction as the change
they describe, into an append-only, hash-chained table."""

from __future__ import annotations

from relay.storage.interface import MetadataTransaction
from relay.storage.models import AuditEvent

APPLICATION_ACTIVITY = "110100"
BEGIN_TRANSFERRING = "110102"
INSTANCES_ACCESSED = "110103"
INSTANCES_TRANSFERRED = "110104"
STUDY_DELETED = "110105"
EXPORT = "110106"
IMPORT = "110107"
SECURITY_ALERT = "110113"
USER_AUTHENTICATION = "110114"

# Every action the relay records, with its event id: one place to read the whole trail's shape.
EVENT_IDS = {
    "site-added": APPLICATION_ACTIVITY,
    "guessing-throttled": SECURITY_ALERT,
    "site-credential-rotated": SECURITY_ALERT,
    "site-disabled": SECURITY_ALERT,
    "site-enabled": SECURITY_ALERT,
    "site-authentication": USER_AUTHENTICATION,  # refused; accepted once a while per address
    "transfer-created": BEGIN_TRANSFERRING,
    "keys-installed": APPLICATION_ACTIVITY,
    "phone-documents-installed": APPLICATION_ACTIVITY,
    "code-reissued": SECURITY_ALERT,
    "break-glass-authorization": SECURITY_ALERT,
    "patient-authorization": APPLICATION_ACTIVITY,
    "consent-from-sending-site": SECURITY_ALERT,
    "transfer-revoked": SECURITY_ALERT,
    "status-read": APPLICATION_ACTIVITY,
    "phone-link-refused": USER_AUTHENTICATION,
    "phone-status-read": APPLICATION_ACTIVITY,
    "phone-revocation": SECURITY_ALERT,
    "redeem-attempt": USER_AUTHENTICATION,
    "transfer-locked": SECURITY_ALERT,
    "delivery-receipt": IMPORT,
    "review-copy-receipt": IMPORT,
    "discard-receipt": APPLICATION_ACTIVITY,  # the trauma center discarded a held study
    "holdings-read": APPLICATION_ACTIVITY,
    "object-download": INSTANCES_ACCESSED,
    "upload-begun": BEGIN_TRANSFERRING,  # the first acknowledged byte of the transfer
    "upload-closed": INSTANCES_TRANSFERRED,  # the upload finished: its manifest closed
    "manifest-read": INSTANCES_ACCESSED,
    "transfer-expired": APPLICATION_ACTIVITY,
    "transfer-purged": STUDY_DELETED,
    "relay-migrated": APPLICATION_ACTIVITY,  # `relay migrate` moved the storage (operator)
}


async def record(
    tx: MetadataTransaction,
    now: float,
    *,
    action: str,
    actor: str,
    actor_role: str,
    transfer_id: str | None,
    outcome: str = "success",
    remote: str = "local",
    **detail: object,
) -> None:
    """Append one record; its event id is `EVENT_IDS[action]` (a KeyError for an action not
    listed there, so every action is listed)."""
    await tx.audit(
        AuditEvent(
            event_id=EVENT_IDS[action],
            action=action,
            actor=actor,
            actor_role=actor_role,
            transfer_id=transfer_id,
            outcome=outcome,
            detail=dict(detail),
            remote=remote,
        ),
        now,
    )
