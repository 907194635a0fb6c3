"""Sealed objects and manifest records: resumable upload by the sender, streamed download by the
receiving site after redemption. A chunk is acknowledged only once durable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from relay import audit, errors
from relay.api import bodies
from relay.api.auth import remote, require_site
from relay.appkeys import CONFIG, MANIFEST_EVENTS, METADATA, OBJECTS, UPLOAD_LOCKS
from relay.lifecycle import Transfer
from relay.storage.interface import MetadataTransaction
from relay.storage.models import ManifestRecord, Site
from transfer_codes.manifest import MAX_RECORD_SIZE
from transfer_codes.wire import b64encode_text

routes = web.RouteTableDef()

BODY_BLOCK = 256 * 1024
MAX_WAIT_SECONDS = 25.0
RECORDS_PER_PAGE = 500
PAGE_BYTES = 4 * 1024 * 1024  # a page of records; one record alone may be larger
RECORDS_PER_READ = PAGE_BYTES // MAX_RECORD_SIZE  # read in steps, so a page stays near PAGE_BYTES


async def _sender_transfer(tx: MetadataTransaction, site: Site, transfer_id: str) -> Transfer:
    t = await tx.transfer(transfer_id)
    if t is None or t.sender != site.name:
        raise errors.NotFound()
    return t


async def _readable_transfer(
    tx: MetadataTransaction, site: Site, transfer_id: str, now: float
) -> Transfer:
    t = await tx.transfer(transfer_id)
    if t is None:
        raise errors.NotFound()
    if t.sender == site.name:
        return t
    if not t.downloadable_by(site.name, now):
        raise errors.NotFound()
    return t


def _require_upload(t: Transfer, now: float) -> None:
    if not t.accepts_upload(now):
        state = "expired" if t.is_due(now) else t.state.value  # due before the sweeper runs
        raise errors.InvalidTransition(f"This transfer no longer accepts uploads (it is {state}).")


class _UploadLock(asyncio.Lock):
    """A lock that counts the requests holding or waiting for it, so the last one out can drop
    it from the app's map (`asyncio.Lock` does not say whether anyone waits)."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0


@asynccontextmanager
async def _upload_lock(request: web.Request, transfer_id: str, index: int) -> AsyncIterator[None]:
    """Hold the lock of one object's upload; the map keeps an entry only while it is in use."""
    locks = request.app[UPLOAD_LOCKS]
    key = (transfer_id, index)
    lock = locks.get(key)
    if not isinstance(lock, _UploadLock):
        lock = locks[key] = _UploadLock()
    lock.users += 1
    try:
        async with lock:
            yield
    finally:
        lock.users -= 1
        if lock.users == 0 and locks.get(key) is lock:
            del locks[key]


@routes.get("/api/v1/transfers/{transfer_id}/objects")
async def holdings(request: web.Request) -> web.Response:
    """What the relay holds: the client resumes from here and sends only the rest."""
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _readable_transfer(tx, site, transfer_id, now)
        objects = await tx.object_statuses(t.id)
        records = await tx.manifest_count(t.id)
        closed = await tx.manifest_closed(t.id)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="holdings-read",
            actor=site.name,
            actor_role=site.role,
            transfer_id=t.id,
            remote=remote(request),
            objects=len(objects),
            records=records,
        )
    return web.json_response(
        {
            "objects": [
                {"index": o.index, "offset": o.durable_offset, "complete": o.complete}
                for o in objects
            ],
            "manifest_records": records,
            "manifest_closed": closed,
        }
    )


def _completion(request: web.Request) -> tuple[int, str] | None:
    """`Upload-Length` and `Upload-SHA256` on a PATCH: this PATCH ends the object, whose whole
    sealed form has that size and digest (saves a separate `complete` round trip)."""
    length = request.headers.get("Upload-Length")
    digest = request.headers.get("Upload-SHA256")
    if length is None and digest is None:
        return None
    if not (length and bodies.is_small_number(length, 18) and digest and len(digest) == 64):
        raise errors.BadRequest("Upload-Length and Upload-SHA256 must be given together.")
    return int(length), digest.lower()


@routes.patch("/api/v1/transfers/{transfer_id}/objects/{index}")
async def append(request: web.Request) -> web.Response:
    """Append sealed bytes at `Upload-Offset`; acknowledged only once durable. With
    `Upload-Length` and `Upload-SHA256`, the PATCH that reaches that length also completes the
    object after checking the digest of everything stored."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    header = request.headers.get("Upload-Offset", "")
    if not (header.isascii() and header.isdigit()):
        raise errors.BadRequest("Upload-Offset must be given as a non-negative integer.")
    offset = int(header)
    completion = _completion(request)
    config = request.app[CONFIG]
    async with _upload_lock(request, transfer_id, index):
        now = config.clock()
        async with request.app[METADATA].transaction() as tx:
            t = await _sender_transfer(tx, site, transfer_id)
            _require_upload(t, now)
            current = await tx.object_status(t.id, index)
        if current is not None and current.complete:
            raise errors.InvalidTransition("That object is already complete.")
        durable = current.durable_offset if current else 0
        if offset != durable:
            conflict = errors.UploadConflict(
                f"The relay holds {durable} bytes of this object; resume from there."
            )
            conflict.offset = durable  # type: ignore[attr-defined]
            raise conflict

        hasher = hashlib.sha256() if offset == 0 else None

        async def body() -> AsyncIterator[bytes]:
            async for block in request.content.iter_chunked(BODY_BLOCK):
                if hasher is not None:
                    hasher.update(block)
                yield block

        new_offset = await request.app[OBJECTS].write_at(
            transfer_id, index, offset, body(), config.max_object_size
        )
        done = completion is not None and new_offset == completion[0]
        if completion is not None and done:
            digest = (
                hasher.hexdigest()
                if hasher is not None
                else await request.app[OBJECTS].sha256(transfer_id, index)
            )
            if digest != completion[1]:
                # Not acknowledged: the next PATCH starts again from the old durable offset.
                raise errors.IntegrityError()
        async with request.app[METADATA].transaction() as tx:
            await tx.set_durable_offset(transfer_id, index, new_offset)
            if completion is not None and done:
                await tx.complete_object(transfer_id, index, new_offset, completion[1])
    if done:
        _notify(request, transfer_id)
    return web.json_response(
        {"offset": new_offset, "complete": done}, headers={"Upload-Offset": str(new_offset)}
    )


@routes.post("/api/v1/transfers/{transfer_id}/objects/{index}/complete")
async def complete(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    body = await bodies.json_body(request)
    size = bodies.integer(body, "size")
    sha256 = bodies.text(body, "sha256", max_len=64)
    config = request.app[CONFIG]
    async with _upload_lock(request, transfer_id, index):
        now = config.clock()
        async with request.app[METADATA].transaction() as tx:
            t = await _sender_transfer(tx, site, transfer_id)
            current = await tx.object_status(t.id, index)
        if current is None or not current.complete:
            # Before reading the file: after expiry or revocation the sweeper deletes it.
            _require_upload(t, now)
        if current is not None and current.complete:
            if (current.size, current.sha256) != (size, sha256):
                raise errors.IntegrityError("That object was completed with other contents.")
            return web.json_response({"index": index, "complete": True})
        if current is None or current.durable_offset != size:
            raise errors.IntegrityError(
                f"The relay holds {current.durable_offset if current else 0} bytes of this "
                f"object, not {size}."
            )
        if await request.app[OBJECTS].sha256(transfer_id, index) != sha256:
            raise errors.IntegrityError()
        config.clock()
        async with request.app[METADATA].transaction() as tx:
            await tx.complete_object(transfer_id, index, size, sha256)
    _notify(request, transfer_id)
    return web.json_response({"index": index, "complete": True})


@routes.get("/api/v1/transfers/{transfer_id}/objects/{index}")
async def download(request: web.Request) -> web.StreamResponse:
    site = await require_site(request, "receiving")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _readable_transfer(tx, site, transfer_id, now)
        status = await tx.object_status(t.id, index)
        if status is None or not status.complete or status.size is None:
            raise errors.ObjectIncomplete()
        await audit.record(
            tx,
            now,
            event_id=audit.INSTANCES_ACCESSED,
            action="object-download",
            actor=site.name,
            actor_role="receiving",
            transfer_id=t.id,
            remote=remote(request),
            index=index,
        )
    if await request.app[OBJECTS].size(transfer_id, index) != status.size:
        # Refuse up front: a short file would break the promised Content-Length mid-body.
        raise errors.StoredObjectDamaged()
    start = 0
    range_header = request.headers.get("Range", "")
    if range_header:
        unit, _, spec = range_header.partition("=")
        first, dash, last = spec.partition("-")
        if unit != "bytes" or not dash or last or not bodies.is_small_number(first, 20):
            raise errors.BadRequest("Only 'Range: bytes=N-' is supported.")
        start = int(first)
        if start > status.size:
            raise web.HTTPRequestRangeNotSatisfiable()
    response = web.StreamResponse(status=206 if range_header else 200)
    response.content_type = "application/octet-stream"
    response.content_length = status.size - start
    response.headers["X-Object-SHA256"] = status.sha256 or ""
    if range_header:
        response.headers["Content-Range"] = f"bytes {start}-{status.size - 1}/{status.size}"
    await response.prepare(request)
    async for block in request.app[OBJECTS].read(transfer_id, index, start):
        await response.write(block)
    await response.write_eof()
    return response


class _ManifestEvent(asyncio.Event):
    """An event that counts the requests waiting on it, so the last one out can drop it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters = 0


def _watch(request: web.Request, transfer_id: str) -> _ManifestEvent:
    """Register interest in what arrives next for a transfer; pair with `_unwatch`."""
    events = request.app[MANIFEST_EVENTS]
    event = events.get(transfer_id)
    if not isinstance(event, _ManifestEvent):
        event = events[transfer_id] = _ManifestEvent()
    event.waiters += 1
    return event


def _unwatch(request: web.Request, transfer_id: str, event: _ManifestEvent) -> None:
    event.waiters -= 1
    events = request.app[MANIFEST_EVENTS]
    if event.waiters == 0 and events.get(transfer_id) is event:
        del events[transfer_id]


def _notify(request: web.Request, transfer_id: str) -> None:
    """Wake whoever waits on the transfer; the next waiter registers a fresh event."""
    event = request.app[MANIFEST_EVENTS].pop(transfer_id, None)
    if event is not None:
        event.set()


@routes.put("/api/v1/transfers/{transfer_id}/manifest/{seq}")
async def put_manifest_record(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    seq_text = request.match_info["seq"]
    if not bodies.is_small_number(seq_text):
        raise errors.BadRequest("The manifest record number must be a small integer.")
    seq = int(seq_text)
    final = request.headers.get("Manifest-Final", "0") in ("1", "true")
    config = request.app[CONFIG]
    limit = config.max_manifest_record
    message = f"A manifest record must be 1 to {limit} bytes."
    data = await bodies.read_limited(request, limit, message)
    if not data:
        raise errors.BadRequest(message)
    now = config.clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _sender_transfer(tx, site, transfer_id)
        existing = await tx.manifest_record(t.id, seq)
        if existing is not None:
            if (existing.record, existing.final) != (data, final):
                raise errors.InvalidTransition(
                    f"Manifest record {seq} differs from the stored one."
                )
            return web.json_response({"seq": seq, "final": final})
        _require_upload(t, now)
        if await tx.manifest_closed(t.id):
            raise errors.InvalidTransition("The manifest of this transfer is already closed.")
        if seq > 0 and await tx.manifest_record(t.id, seq - 1) is None:
            raise errors.BadRequest("Manifest records must be sent in order.")
        await tx.put_manifest_record(t.id, ManifestRecord(seq, final, data))
        if final:
            await audit.record(
                tx,
                now,
                event_id=audit.INSTANCES_TRANSFERRED,
                action="upload-closed",
                actor=site.name,
                actor_role="sending",
                transfer_id=t.id,
                remote=remote(request),
                objects=len([o for o in await tx.object_statuses(t.id) if o.complete]),
            )
    _notify(request, transfer_id)
    return web.json_response({"seq": seq, "final": final}, status=201)


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


@routes.get("/api/v1/transfers/{transfer_id}/manifest")
async def get_manifest(request: web.Request) -> web.Response:
    """Manifest records from `from`; with `wait`, hold the request up to that many seconds
    until something new arrives (records or completed objects), so a receiver can follow an
    upload that is still running."""
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    try:
        from_seq = int(request.query.get("from", "0"))
        wait = min(float(request.query.get("wait", "0")), MAX_WAIT_SECONDS)
    except ValueError as e:
        raise errors.BadRequest("'from' and 'wait' must be numbers.") from e
    if not 0 <= from_seq < 2**62:  # SQLite integers are 64-bit
        raise errors.BadRequest("'from' must be a manifest record number.")
    config = request.app[CONFIG]
    event: _ManifestEvent | None = None
    try:
        while True:
            now = config.clock()
            async with request.app[METADATA].transaction() as tx:
                t = await _readable_transfer(tx, site, transfer_id, now)
                if wait > 0 and event is None:
                    # Registered before reading (and only for a site that may read): whatever
                    # commits after the read below still wakes this request.
                    event = _watch(request, transfer_id)
                records = await _manifest_page(tx, t.id, from_seq)
                closed = await tx.manifest_closed(t.id)
                objects = await tx.object_statuses(t.id)
                if records or closed or wait <= 0:
                    # Once per request, however long it waited: this is what was read.
                    detail: dict[str, Any] = {"from": from_seq, "count": len(records)}
                    await audit.record(
                        tx,
                        now,
                        event_id=audit.INSTANCES_ACCESSED,
                        action="manifest-read",
                        actor=site.name,
                        actor_role=site.role,
                        transfer_id=t.id,
                        remote=remote(request),
                        **detail,
                    )
                    break
            if event is not None:  # always: it was registered since wait > 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=wait)
            wait = 0
    finally:
        if event is not None:
            _unwatch(request, transfer_id, event)
    return web.json_response(
        {
            "records": [
                {"seq": r.seq, "final": r.final, "record": b64encode_text(r.record)}
                for r in records
            ],
            "closed": closed,
            "complete_objects": [o.index for o in objects if o.complete],
        }
    )
