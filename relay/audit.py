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


async def record(
    tx: MetadataTransaction,
    now: float,
    *,
    event_id: str,
    action: str,
    actor: str,
    actor_role: str,
    transfer_id: str | None,
    outcome: str = "success",
    remote: str = "local",
    **detail: object,
) -> None:
    await tx.audit(
        AuditEvent(
            event_id=event_id,
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
