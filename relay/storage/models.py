"""Plain records that cross the storage interface. None of them holds PHI or a key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    role: str  # "sending" | "receiving"
    display_name: str
    disabled_at: float | None = None  # by the operator; its credential is refused


@dataclass(frozen=True)
class SiteRecord:
    """A site as the operator sees it (`trauma-relay site list`)."""

    site: Site
    created_at: float
    open_transfers: int  # sent or to receive, neither delivered, revoked nor expired
    previous_until: float | None  # the rotated-out credential works until then


@dataclass(frozen=True)
class StoredLock:
    """A wrapped data key with the verifier of the proof that unlocks it."""

    salt: bytes
    verifier: bytes
    wrapped_key: bytes


@dataclass(frozen=True)
class CancelledLock:
    """What stays of a code of a transfer the patient or family cancelled: its salt and the
    verifier of its proof, no wrapped key."""

    salt: bytes
    verifier: bytes


@dataclass(frozen=True)
class ObjectStatus:
    index: int
    durable_offset: int
    complete: bool
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class ManifestRecord:
    seq: int
    final: bool
    record: bytes


@dataclass(frozen=True)
class AuditEvent:
    """One audit record (DICOM PS3.15 A.5 event ids). `detail` carries no PHI."""

    event_id: str
    action: str
    actor: str
    actor_role: str
    transfer_id: str | None
    outcome: str
    detail: dict[str, object]
    remote: str
