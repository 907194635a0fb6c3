"""Sealed objects and manifest records in the metadata store: what the sender may upload and
what a reader is given. Bytes themselves are the object store's (`relay.api.uploads` streams
them); here are the checks and records around them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay import errors
from relay.desk.visit import Desk
from relay.storage.interface import MetadataTransaction
from relay.storage.models import ManifestRecord, ObjectStatus
from transfer_codes.manifest import MAX_RECORD_SIZE

RECORDS_PER_PAGE = 500
PAGE_BYTES = 4 * 1024 * 1024  # a page of records; one record alone may be larger
RECORDS_PER_READ = PAGE_BYTES // MAX_RECORD_SIZE  # read in steps, so a page stays near PAGE_BYTES


@dataclass(frozen=True)
class Holdings:
    objects: list[ObjectStatus]
    manifest_records: int
    manifest_closed: bool


async def holdings(d: Desk, transfer_id: str) -> Holdings:
    """What the relay holds: the sender resumes from here and sends only the rest."""
    t = await d.readable(transfer_id)
    objects = await d.tx.object_statuses(t.id)
    records = await d.tx.manifest_count(t.id)
    closed = await d.tx.manifest_closed(t.id)
    await d.record("holdings-read", t.id, objects=len(objects), records=records)
    return Holdings(objects, records, closed)


async def resume_offset(d: Desk, transfer_id: str, index: int, offset: int) -> None:
    """May the caller append to object `index` at `offset`? Raises `InvalidTransition` (no
    longer accepting, or the object is complete) or `UploadConflict` carrying the durable
    offset to resume from."""
    t = await d.sent(transfer_id)
    t.require_upload(d.now)
    current = await d.tx.object_status(t.id, index)
    if current is not None and current.complete:
        raise errors.InvalidTransition("That object is already complete.")
    durable = current.durable_offset if current else 0
    if offset != durable:
        conflict = errors.UploadConflict(
            f"The relay holds {durable} bytes of this object; resume from there."
        )
        conflict.offset = durable  # type: ignore[attr-defined]
        raise conflict


async def appended(d: Desk, transfer_id: str, index: int, offset: int, sha256: str | None) -> None:
    """Bytes up to `offset` are durable; with `sha256` the object is complete at that size.
    The transfer's first acknowledged bytes are audited as the upload's beginning: once per
    transfer, not per chunk (write transactions are serialized, so two objects' first chunks
    cannot both see nothing stored)."""
    if offset > 0 and await d.tx.stored_bytes(transfer_id=transfer_id) == 0:
        await d.record("upload-begun", transfer_id, index=index)
    await d.tx.set_durable_offset(transfer_id, index, offset)
    if sha256 is not None:
        await d.tx.complete_object(transfer_id, index, offset, sha256)


@dataclass(frozen=True)
class BatchRoom:
    """Before a batch upload: which of its objects the relay already holds whole (with the same
    contents: a batch whose answer was lost, sent again), and how many bytes the sending site
    and the transfer already keep."""

    complete: set[int]
    site_bytes: int
    transfer_bytes: int


async def batch_room(d: Desk, transfer_id: str, objects: list[tuple[int, int, str]]) -> BatchRoom:
    """May the caller upload `objects` (index, size, sha256) whole? Each must be new (nothing
    of it acknowledged), or complete with that size and digest. Raises `InvalidTransition` (no
    longer accepting), `UploadConflict` (part of one is held: resume it on its own), or
    `IntegrityError` (one was completed with other contents)."""
    t = await d.sent(transfer_id)
    t.require_upload(d.now)
    complete = set()
    for index, size, sha256 in objects:
        current = await d.tx.object_status(t.id, index)
        if current is not None and current.complete:
            if (current.size, current.sha256) != (size, sha256):
                raise errors.IntegrityError("That object was completed with other contents.")
            complete.add(index)
        elif current is not None and current.durable_offset:
            conflict = errors.UploadConflict(
                f"The relay holds {current.durable_offset} bytes of object {index}; resume it "
                "on its own from there."
            )
            conflict.offset = current.durable_offset  # type: ignore[attr-defined]
            raise conflict
    return BatchRoom(
        complete,
        await d.tx.stored_bytes(sender=d.caller.name),
        await d.tx.stored_bytes(transfer_id=transfer_id),
    )


async def completion(d: Desk, transfer_id: str, index: int, size: int, sha256: str) -> bool:
    """May the caller complete object `index` at `size` and `sha256`? True if it already is
    (with those contents); False if the stored digest must be checked next. Raises
    `IntegrityError` for other contents or another size."""
    t = await d.sent(transfer_id)
    current = await d.tx.object_status(t.id, index)
    if current is None or not current.complete:
        # Before reading the file: after expiry or revocation the sweeper deletes it.
        t.require_upload(d.now)
    if current is not None and current.complete:
        if (current.size, current.sha256) != (size, sha256):
            raise errors.IntegrityError("That object was completed with other contents.")
        return True
    if current is None or current.durable_offset != size:
        raise errors.IntegrityError(
            f"The relay holds {current.durable_offset if current else 0} bytes of this "
            f"object, not {size}."
        )
    return False


async def download(d: Desk, transfer_id: str, index: int) -> ObjectStatus:
    """The complete object's status for the caller to download (`ObjectIncomplete` if not)."""
    t = await d.readable(transfer_id)
    status = await d.tx.object_status(t.id, index)
    if status is None or not status.complete or status.size is None:
        raise errors.ObjectIncomplete()
    await d.record("object-download", t.id, index=index)
    return status


async def downloads(d: Desk, transfer_id: str, indices: list[int]) -> list[ObjectStatus]:
    """`download` for several objects at once, in one transaction: all of them, each audited
    as its own download, or none (`ObjectIncomplete` if one is not complete)."""
    t = await d.readable(transfer_id)
    statuses = []
    for index in indices:
        status = await d.tx.object_status(t.id, index)
        if status is None or not status.complete or status.size is None:
            raise errors.ObjectIncomplete()
        statuses.append(status)
    for index in indices:
        await d.record("object-download", t.id, index=index)
    return statuses


async def put_manifest_records(
    d: Desk, transfer_id: str, first: int, records: list[bytes], *, final: bool
) -> int:
    """Store the caller's manifest records numbered from `first`, the last one closing the
    manifest if `final`: all of them or, on a refusal, none. Returns how many were new. A record
    already stored is accepted again if identical (a repeat after a lost answer is safe) and
    refused if it differs. Records go in order, before the manifest closes; the closing one is
    audited as the upload's end (once, as when records come one per request)."""
    t = await d.sent(transfer_id)
    last = len(records) - 1
    batch = [ManifestRecord(first + i, final and i == last, r) for i, r in enumerate(records)]
    stored = await d.tx.manifest_records(t.id, first, len(batch))
    for old in stored:
        sent = batch[old.seq - first]
        if (old.record, old.final) != (sent.record, sent.final):
            raise errors.InvalidTransition(
                f"Manifest record {old.seq} differs from the stored one."
            )
    new = batch[len(stored) :]
    if not new:
        return 0
    t.require_upload(d.now)
    if await d.tx.manifest_closed(t.id):
        raise errors.InvalidTransition("The manifest of this transfer is already closed.")
    held = await d.tx.manifest_count(t.id)  # records are numbered 0, 1, ... without a gap
    if new[0].seq != held:
        raise errors.BadRequest(
            f"Manifest records must be sent in order: this relay holds {held} of this "
            f"transfer's records, so the next one to send is number {held}; nothing was stored."
        )
    for record in new:
        await d.tx.put_manifest_record(t.id, record)
    if new[-1].final:
        complete = [o for o in await d.tx.object_statuses(t.id) if o.complete]
        size = await d.tx.stored_bytes(transfer_id=t.id)
        await d.record("upload-closed", t.id, objects=len(complete), bytes=size)
    return len(new)


async def _manifest_page(
    tx: MetadataTransaction, transfer_id: str, from_seq: int
) -> list[ManifestRecord]:
    """Records from `from_seq`: at most RECORDS_PER_PAGE of them and PAGE_BYTES in all, but
    always at least one if there is one, so a reader moves on."""
    page: list[ManifestRecord] = []
    size = 0
    seq = from_seq
    while len(page) < RECORDS_PER_PAGE:
        want = min(RECORDS_PER_READ, RECORDS_PER_PAGE - len(page))
        batch = await tx.manifest_records(transfer_id, seq, want)
        for r in batch:
            if page and size + len(r.record) > PAGE_BYTES:
                return page
            page.append(r)
            size += len(r.record)
        if len(batch) < want:
            break
        seq = batch[-1].seq + 1
    return page


@dataclass(frozen=True)
class ManifestPage:
    records: list[ManifestRecord]
    closed: bool


async def manifest_page(
    d: Desk, transfer_id: str, from_seq: int, *, waiting: bool, before_reading: Callable[[], None]
) -> ManifestPage | None:
    """Manifest records from `from_seq` for a caller who may read them. `before_reading` runs
    once the caller is known to be allowed (to register for wake-ups before the read). None if
    `waiting` and there is nothing new; otherwise the page, audited as read."""
    t = await d.readable(transfer_id)
    before_reading()
    records = await _manifest_page(d.tx, t.id, from_seq)
    closed = await d.tx.manifest_closed(t.id)
    if not (records or closed or not waiting):
        return None
    # Once per request, however long it waited: this is what was read.
    detail: dict[str, Any] = {"from": from_seq, "count": len(records)}  # `from` is a keyword
    await d.record("manifest-read", t.id, **detail)
    return ManifestPage(records, closed)
