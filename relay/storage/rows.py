"""What both metadata stores (SQLite and PostgreSQL) read and write the same way: the column
lists, a transfer as a row and back, an audit record's hashed fields, and the migration steps."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from relay.lifecycle import Authorizer, Revoker, State, Transfer
from relay.storage.audit_chain import chain_hash
from relay.storage.models import AuditEvent

TRANSFER_COLUMNS = (
    "id, sender, recipient, locator, state, created_at, expires_at, authorized_at, "
    "authorized_by, failed_attempts, redeemed_at, delivered_at, revoked_at, revoked_by"
)
SITE_COLUMNS = "name, role, display_name, disabled_at"
MAX_SENDER_ADDRESSES = 8


def schema_steps(folder_name: str) -> list[tuple[int, str]]:
    """(number, SQL) of each `NNN_*.sql` file in `relay/storage/<folder_name>`, in order."""
    folder = resources.files("relay.storage") / folder_name
    steps = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            steps.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(steps)


def transfer_from_row(row: Any) -> Transfer:
    """A transfer from a row of `TRANSFER_COLUMNS`."""
    return Transfer(
        id=row[0],
        sender=row[1],
        recipient=row[2],
        locator=row[3],
        state=State(row[4]),
        created_at=row[5],
        expires_at=row[6],
        authorized_at=row[7],
        authorized_by=Authorizer(row[8]) if row[8] else None,
        failed_attempts=row[9],
        redeemed_at=row[10],
        delivered_at=row[11],
        revoked_at=row[12],
        revoked_by=Revoker(row[13]) if row[13] else None,
    )


def transfer_values(t: Transfer) -> tuple[object, ...]:
    """`t` as the values of `TRANSFER_COLUMNS`."""
    return (
        t.id,
        t.sender,
        t.recipient,
        t.locator,
        t.state.value,
        t.created_at,
        t.expires_at,
        t.authorized_at,
        t.authorized_by.value if t.authorized_by else None,
        t.failed_attempts,
        t.redeemed_at,
        t.delivered_at,
        t.revoked_at,
        t.revoked_by.value if t.revoked_by else None,
    )


def saved_transfer_values(t: Transfer) -> tuple[object, ...]:
    """What `save_transfer` writes: state, authorized_at, authorized_by, failed_attempts,
    redeemed_at, delivered_at, revoked_at, revoked_by, expires_at, and the id last."""
    values = transfer_values(t)
    return (*values[4:5], *values[7:], t.expires_at, t.id)


def audit_fields(event: AuditEvent, now: float) -> dict[str, Any]:
    """The content of an audit record, as its hash covers it (`chain_hash`)."""
    return {
        "at": now,
        "event_id": event.event_id,
        "action": event.action,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "transfer_id": event.transfer_id,
        "outcome": event.outcome,
        "detail": event.detail,
        "remote": event.remote,
    }


def chained_record(event: AuditEvent, now: float, prev: bytes) -> tuple[bytes, tuple[object, ...]]:
    """The hash of the record that follows the one hashed `prev`, and its stored values: at,
    event_id, action, actor, actor_role, transfer_id, outcome, detail, remote, prev_hash, hash."""
    digest = chain_hash(prev, audit_fields(event, now))
    return digest, (
        now,
        event.event_id,
        event.action,
        event.actor,
        event.actor_role,
        event.transfer_id,
        event.outcome,
        json.dumps(event.detail, sort_keys=True, separators=(",", ":")),
        event.remote,
        prev,
        digest,
    )
