"""Sealed objects and manifest records: resumable upload by the sender, streamed download by the
receiving site after redemption. A chunk is acknowledged only once durable. The bytes stream
here; the checks and records around them are in `relay.desk.uploads`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from relay import disk, errors
from relay.api import bodies
from relay.api.auth import at_desk, require_site
from relay.appkeys import CONFIG, MANIFEST_EVENTS, METADATA, OBJECTS, UPLOAD_LOCKS
from relay.desk import uploads
from relay.desk.uploads import PAGE_BYTES
from relay.metrics import METRICS
from relay.storage.models import Site
from transfer_codes import wire
from transfer_codes.wire import b64encode_text

log = logging.getLogger("relay")

routes = web.RouteTableDef()

BODY_BLOCK = 256 * 1024
MAX_WAIT_SECONDS = 25.0
TRANSFER = wire.transfer("{transfer_id}")

__all__ = ["PAGE_BYTES", "routes"]  # PAGE_BYTES: the tests size their manifests by it


class _UploadLock(asyncio.Lock):
    """A lock that counts the requests holding or waiting for it, so the last one out can drop
    it from the app's map (`asyncio.Lock` does not say whether anyone waits)."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0


@asynccontextmanager
async def upload_lock(
    request: web.Request, transfer_id: str, indices: Sequence[int]
) -> AsyncIterator[None]:
    """Hold the locks of objects' uploads (`indices` ascending: one, or a batch's): first this
    process's, one per object (the map keeps an entry only while it is in use), then the
    metadata store's, which keeps instances sharing the store apart. Raises `UploadBusy`,
    carrying the durable offset of a single object, if another instance's write of one does
    not end in a short wait."""
    locks = request.app[UPLOAD_LOCKS]
    async with AsyncExitStack() as held_here:
        for index in indices:
            await held_here.enter_async_context(_process_lock(locks, (transfer_id, index)))
        async with request.app[METADATA].object_write_lock(transfer_id, indices) as held:
            if not held:
                busy = errors.UploadBusy(
                    "Another upload of this object, through another instance of this relay, "
                    "has not ended yet; resume from the relay's offset in a moment."
                )
                if len(indices) == 1:
                    offset = await _durable_offset(request, transfer_id, indices[0])
                    busy.offset = offset  # type: ignore[attr-defined]
                raise busy
            yield


@asynccontextmanager
async def _process_lock(
    locks: dict[tuple[str, int], asyncio.Lock], key: tuple[str, int]
) -> AsyncIterator[None]:
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


async def _durable_offset(request: web.Request, transfer_id: str, index: int) -> int:
    async with request.app[METADATA].transaction() as tx:
        status = await tx.object_status(transfer_id, index)
    return status.durable_offset if status else 0


@routes.get(TRANSFER + "/objects")
async def holdings(request: web.Request) -> web.Response:
    """What the relay holds: the client resumes from here and sends only the rest."""
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    async with at_desk(request, site) as d:
        held = await uploads.holdings(d, transfer_id)
    return web.json_response(
        {
            "objects": [
                {"index": o.index, "offset": o.durable_offset, "complete": o.complete}
                for o in held.objects
            ],
            "manifest_records": held.manifest_records,
            "manifest_closed": held.manifest_closed,
        }
    )


def _completion(request: web.Request) -> tuple[int, str] | None:
    """`Upload-Length` and `Upload-SHA256` on a PATCH: this PATCH ends the object, whose whole
    sealed form has that size and digest (saves a separate `complete` round trip)."""
    length = request.headers.get(wire.UPLOAD_LENGTH)
    digest = request.headers.get(wire.UPLOAD_SHA256)
    if length is None and digest is None:
        return None
    if not (length and bodies.is_small_number(length, 18) and digest and len(digest) == 64):
        raise errors.BadRequest(
            f"{wire.UPLOAD_LENGTH} and {wire.UPLOAD_SHA256} must be given together."
        )
    return int(length), digest.lower()


@routes.patch(TRANSFER + "/objects/{index}")
async def append(request: web.Request) -> web.Response:
    """Append sealed bytes at `Upload-Offset`; acknowledged only once durable. With
    `Upload-Length` and `Upload-SHA256`, the PATCH that reaches that length also completes the
    object after checking the digest of everything stored."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    header = request.headers.get(wire.UPLOAD_OFFSET, "")
    if not (header.isascii() and header.isdigit()):
        raise errors.BadRequest(f"{wire.UPLOAD_OFFSET} must be given as a non-negative integer.")
    offset = int(header)
    completion = _completion(request)
    config = request.app[CONFIG]
    async with upload_lock(request, transfer_id, [index]):
        async with at_desk(request, site) as d:
            await uploads.resume_offset(d, transfer_id, index, offset)
            site_bytes = await d.tx.stored_bytes(sender=site.name)
            transfer_bytes = await d.tx.stored_bytes(transfer_id=transfer_id)
        await disk.require_room(config.data_dir, config.disk_reserve_bytes)
        # This object may grow by what is left of the site's quota and of the transfer's
        # size (both counted without this object's bytes past `offset`, which are dropped).
        room = min(config.site_quota_bytes - site_bytes, config.max_transfer_bytes - transfer_bytes)
        limit, too_large = config.max_object_size, None
        if offset + room < limit:
            limit, too_large = (
                max(offset, offset + room),
                errors.QuotaExceeded(
                    "This upload would pass what this relay keeps for one sending site "
                    f"({config.site_quota_bytes} bytes over its open transfers) or one transfer "
                    f"({config.max_transfer_bytes} bytes). Nothing past the last acknowledged byte "
                    "was kept; revoke transfers no longer needed, or ask the relay's operator."
                ),
            )

        hasher = hashlib.sha256() if offset == 0 else None

        async def body() -> AsyncIterator[bytes]:
            async for block in bodies.blocks(request, BODY_BLOCK):
                if hasher is not None:
                    hasher.update(block)
                yield block

        new_offset = await request.app[OBJECTS].write_at(
            transfer_id, index, offset, body(), limit, too_large
        )
        request.app[METRICS].bytes_in.inc(new_offset - offset)
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
        async with at_desk(request, site) as d:
            await uploads.appended(
                d, transfer_id, index, new_offset, completion[1] if completion and done else None
            )
    # A whole object wakes no manifest reader: the sender lists it (a manifest record) only
    # once it is acknowledged whole, and that record wakes them.
    return web.json_response(
        {"offset": new_offset, "complete": done}, headers={wire.UPLOAD_OFFSET: str(new_offset)}
    )


@routes.post(TRANSFER + "/objects/{index}/complete")
async def complete(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    body = await bodies.json_body(request)
    size = bodies.integer(body, "size")
    sha256 = bodies.text(body, "sha256", max_len=64)
    async with upload_lock(request, transfer_id, [index]):
        async with at_desk(request, site) as d:
            already = await uploads.completion(d, transfer_id, index, size, sha256)
        if already:
            return web.json_response({"index": index, "complete": True})
        if await request.app[OBJECTS].sha256(transfer_id, index) != sha256:
            raise errors.IntegrityError()
        async with at_desk(request, site) as d:
            await uploads.appended(d, transfer_id, index, size, sha256)
    return web.json_response({"index": index, "complete": True})


@routes.get(TRANSFER + "/objects/{index}")
async def download(request: web.Request) -> web.StreamResponse:
    site = await require_site(request, "receiving")
    transfer_id = bodies.transfer_id(request)
    index = bodies.object_index(request)
    async with at_desk(request, site) as d:
        status = await uploads.download(d, transfer_id, index)
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
    response.headers[wire.OBJECT_SHA256] = status.sha256 or ""
    if range_header:
        response.headers["Content-Range"] = f"bytes {start}-{status.size - 1}/{status.size}"
    await response.prepare(request)
    sent = request.app[METRICS].bytes_out
    async for block in request.app[OBJECTS].read(transfer_id, index, start):
        await response.write(block)
        sent.inc(len(block))
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


async def notify(request: web.Request, transfer_id: str) -> None:
    """Wake whoever waits on the transfer, here and on the other instances sharing the
    metadata store (they get `wake`). A failure to tell them is logged, not raised: what woke
    them is committed, and their waits run out by themselves."""
    wake(request.app, transfer_id)
    try:
        await request.app[METADATA].announce(transfer_id)
    except Exception as e:  # any failure of the store's connection
        log.warning("Other relay instances were not told of new manifest records (%s).", e)


def wake(app: web.Application, transfer_id: str) -> None:
    """Wake this instance's requests waiting on the transfer's manifest; the next waiter
    registers a fresh event."""
    event = app[MANIFEST_EVENTS].pop(transfer_id, None)
    if event is not None:
        event.set()


def _record_number(text: str, what: str) -> int:
    if not bodies.is_small_number(text):
        raise errors.BadRequest(f"{what} must be a small integer.")
    return int(text)


def _final(request: web.Request) -> bool:
    return request.headers.get(wire.MANIFEST_FINAL, "0") in ("1", "true")


def _record_size_refusal(request: web.Request) -> str:
    return f"A manifest record must be 1 to {request.app[CONFIG].max_manifest_record} bytes."


async def _store_records(
    request: web.Request,
    site: Site,
    transfer_id: str,
    first: int,
    records: list[bytes],
    final: bool,
) -> int:
    """Store `records` from number `first` in one transaction, committed before the answer;
    how many were new (readers waiting are then woken)."""
    async with at_desk(request, site) as d:
        stored = await uploads.put_manifest_records(d, transfer_id, first, records, final=final)
    if stored:
        await notify(request, transfer_id)
    return stored


@routes.put(TRANSFER + "/manifest/{seq}")
async def put_manifest_record(request: web.Request) -> web.Response:
    """Store one manifest record (`Manifest-Final: 1` on the closing one). An identical repeat
    is accepted (200); a different record at a stored number is refused."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    seq = _record_number(request.match_info["seq"], "The manifest record number")
    final = _final(request)
    message = _record_size_refusal(request)
    data = await bodies.read_limited(request, request.app[CONFIG].max_manifest_record, message)
    if not data:
        raise errors.BadRequest(message)
    stored = await _store_records(request, site, transfer_id, seq, [data], final)
    return web.json_response({"seq": seq, "final": final}, status=201 if stored else 200)


@routes.post(TRANSFER + "/manifest")
async def post_manifest_records(request: web.Request) -> web.Response:
    """Store several manifest records at once, numbered from `Manifest-From`, each after its
    4-byte big-endian length; `Manifest-Final: 1` closes the manifest with the last one.

    All are stored in one transaction, or none: in order (the first one is the next the relay
    lacks, or one it holds), identical repeats of stored records accepted, a different record
    at a stored number refused. At most 256 records and 1 MiB of body."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    first = _record_number(request.headers.get(wire.MANIFEST_FROM, ""), wire.MANIFEST_FROM)
    final = _final(request)
    too_large = errors.ManifestBatchTooLarge(
        f"A batch of manifest records holds at most {wire.BATCH_RECORDS} records and "
        f"{wire.BATCH_BYTES} bytes with their lengths; send the rest in the next one."
    )
    body = await bodies.read_limited(request, wire.BATCH_BYTES, too_large)
    try:
        records = wire.unpack_records(body)
    except ValueError as e:
        raise errors.BadRequest(
            "The body must hold one or more manifest records, each after its length "
            f"({wire.LENGTH_PREFIX} bytes, big-endian): {e}."
        ) from e
    if not records:
        raise errors.BadRequest("The body holds no manifest record.")
    if len(records) > wire.BATCH_RECORDS:
        raise too_large
    limit = request.app[CONFIG].max_manifest_record
    if any(len(r) > limit for r in records):
        raise errors.BadRequest(_record_size_refusal(request))
    stored = await _store_records(request, site, transfer_id, first, records, final)
    return web.json_response(
        {"from": first, "count": len(records), "stored": stored, "final": final},
        status=201 if stored else 200,
    )


@routes.get(TRANSFER + "/manifest")
async def get_manifest(request: web.Request) -> web.Response:
    """Manifest records from `from`; with `wait`, hold the request up to that many seconds
    until new records arrive (or the manifest closes), so a receiver can follow an upload that
    is still running. An object becoming whole wakes nobody: it is listed only afterwards. (The
    page does not list the objects held whole: reading every object's status on each poll made
    following a long upload quadratic.)"""
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    try:
        from_seq = int(request.query.get("from", "0"))
        wait = min(float(request.query.get("wait", "0")), MAX_WAIT_SECONDS)
    except ValueError as e:
        raise errors.BadRequest("'from' and 'wait' must be numbers.") from e
    if not 0 <= from_seq < 2**62:  # SQLite integers are 64-bit
        raise errors.BadRequest("'from' must be a manifest record number.")
    event: _ManifestEvent | None = None

    def watch() -> None:
        # Registered before reading (and only for a site that may read): whatever commits
        # after the read still wakes this request.
        nonlocal event
        if wait > 0 and event is None:
            event = _watch(request, transfer_id)

    try:
        while True:
            async with at_desk(request, site) as d:
                page = await uploads.manifest_page(
                    d, transfer_id, from_seq, waiting=wait > 0, before_reading=watch
                )
            if page is not None:
                break
            if event is not None:  # always: it was registered since wait > 0
                ended = "woken"
                try:
                    await asyncio.wait_for(event.wait(), timeout=wait)
                except TimeoutError:
                    ended = "ran_out"
                request.app[METRICS].manifest_waits.labels(ended=ended).inc()
            wait = 0
    finally:
        if event is not None:
            _unwatch(request, transfer_id, event)
    return web.json_response(
        {
            "records": [
                {"seq": r.seq, "final": r.final, "record": b64encode_text(r.record)}
                for r in page.records
            ],
            "closed": page.closed,
        }
    )
