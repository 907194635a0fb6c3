"""Sealed objects several to a request: a sender uploads small whole objects in one POST, a
receiving site fetches several in one. Most of a small image's cost here is per request (its
authentication, transactions, audit commit and HTTP framing), so batches cost less per image;
each object is still locked, stored, checked, acknowledged durably and audited as when it
comes alone (`relay.api.uploads`), and a large one is better sent and fetched alone, which can
resume mid-object."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

from relay import disk, errors
from relay.api import bodies
from relay.api.auth import at_desk, require_site
from relay.api.uploads import BODY_BLOCK, upload_lock
from relay.appkeys import CONFIG, OBJECTS
from relay.desk import uploads
from relay.metrics import METRICS
from transfer_codes import wire

log = logging.getLogger("relay")
routes = web.RouteTableDef()

TRANSFER = wire.transfer("{transfer_id}")
MAX_LISTING = 16 * 1024  # the JSON list before a batch upload's bytes
HEX_DIGEST = re.compile("[0-9a-fA-F]{64}")


@routes.post(TRANSFER + "/objects")
async def upload_batch(request: web.Request) -> web.Response:
    """Several whole sealed objects (`wire.pack_objects`): each new, or already complete with
    the same contents (a batch whose answer was lost may come again). All are acknowledged
    once all are durable, or none is: on a refusal, send them again, or each on its own."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    listed = await _listing(request)
    config = request.app[CONFIG]
    store = request.app[OBJECTS]
    # In ascending order (as listed): two batches cannot each wait for the other.
    async with upload_lock(request, transfer_id, [i for i, _, _ in listed]):
        async with at_desk(request, site) as d:
            room = await uploads.batch_room(d, transfer_id, listed)
        new = [o for o in listed if o[0] not in room.complete]
        size = sum(s for _, s, _ in new)
        if size > min(
            config.site_quota_bytes - room.site_bytes,
            config.max_transfer_bytes - room.transfer_bytes,
        ):
            raise errors.QuotaExceeded(
                "This upload would pass what this relay keeps for one sending site "
                f"({config.site_quota_bytes} bytes over its open transfers) or one transfer "
                f"({config.max_transfer_bytes} bytes). Nothing of it was kept; revoke transfers "
                "no longer needed, or ask the relay's operator."
            )
        if new:
            await disk.require_room(config.data_dir, config.disk_reserve_bytes)
            # Leftovers of a write never acknowledged (the locks are held till the end)
            await store.clear(transfer_id, [i for i, _, _ in new])
        for index, length, sha256 in listed:
            hasher = hashlib.sha256()
            body = _exactly(request, length, hasher)
            if index in room.complete:
                async for _ in body:  # held already: its bytes are read past, not stored
                    pass
                continue
            await store.write_at(transfer_id, index, 0, body, length, cleared=True)
            if hasher.hexdigest() != sha256:
                raise errors.IntegrityError()
        if await request.content.read(1):
            raise errors.BadRequest("The body goes on past the objects its list gives.")
        request.app[METRICS].bytes_in.inc(size)
        async with at_desk(request, site) as d:
            for index, length, sha256 in new:
                await uploads.appended(d, transfer_id, index, length, sha256)
    if new:
        # The access log names the batch's route only; which objects it held is told here.
        log.info(
            "Stored objects %s of transfer %s from one batch.",
            ",".join(str(i) for i, _, _ in new),
            transfer_id,
        )
    return web.json_response(
        {"objects": [{"index": i, "offset": s, "complete": True} for i, s, _ in listed]}
    )


async def _listing(request: web.Request) -> list[tuple[int, int, str]]:
    """A batch upload's list: (index, size, sha256) of each object, indices ascending."""
    length = int.from_bytes(await _read(request, wire.LENGTH_PREFIX), "big")
    if length > MAX_LISTING:
        raise errors.BadRequest("A batch's list of objects is too long.")
    try:
        document = json.loads(await _read(request, length))
        objects = document["objects"]
        listed = [(o["index"], o["size"], o["sha256"]) for o in objects]
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # as `bodies.json_body`
        raise errors.BadRequest(
            "A batch upload starts with the list of its objects: "
            '{"objects": [{"index", "size", "sha256"}, ...]} after its length.'
        ) from e
    if not 1 <= len(listed) <= wire.BATCH_OBJECTS:
        raise errors.BadRequest(f"A batch holds from 1 to {wire.BATCH_OBJECTS} objects.")
    for index, size, sha256 in listed:
        bodies.integer({"index": index}, "index", high=10**9 - 1)
        bodies.integer({"size": size}, "size", low=1, high=request.app[CONFIG].max_object_size)
        if not (isinstance(sha256, str) and HEX_DIGEST.fullmatch(sha256)):
            raise errors.BadRequest("Each object's sha256 must be 64 hex digits.")
    if any(a[0] >= b[0] for a, b in itertools.pairwise(listed)):
        raise errors.BadRequest("A batch lists its objects once each, in ascending order.")
    if sum(s for _, s, _ in listed) > wire.BATCH_UPLOAD_BYTES:
        raise errors.BadRequest(
            f"A batch holds at most {wire.BATCH_UPLOAD_BYTES} bytes; send large objects alone."
        )
    return [(i, s, d.lower()) for i, s, d in listed]


async def _read(request: web.Request, length: int) -> bytes:
    hasher = hashlib.sha256()
    return b"".join([block async for block in _exactly(request, length, hasher)])


async def _exactly(
    request: web.Request, length: int, hasher: hashlib._Hash
) -> AsyncIterator[bytes]:
    """The next `length` bytes of the body, hashed as they pass; `BadRequest` if it ends first."""
    left = length
    while left:
        block = await bodies.next_block(request, min(left, BODY_BLOCK))
        if not block:
            raise errors.BadRequest("The body ends before the objects its list gives.")
        hasher.update(block)
        left -= len(block)
        yield block


@routes.post(TRANSFER + "/objects/fetch")
async def download_batch(request: web.Request) -> web.StreamResponse:
    """Several complete objects in one answer, in the order asked: each after its index and
    size (`wire.object_frame`). Saves small images a request each; a large one is better
    fetched alone (`GET …/objects/{index}`), which can resume where a lost connection cut it."""
    site = await require_site(request, "receiving")
    transfer_id = bodies.transfer_id(request)
    indices = bodies.indices(await bodies.json_body(request), "indices", most=wire.BATCH_OBJECTS)
    async with at_desk(request, site) as d:
        statuses = await uploads.downloads(d, transfer_id, indices)
    store = request.app[OBJECTS]
    ascending = sorted(statuses, key=lambda s: s.index)
    sizes = await store.sizes(transfer_id, [s.index for s in ascending])
    if any(size != s.size for size, s in zip(sizes, ascending, strict=True)):
        raise errors.StoredObjectDamaged()
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    response.content_length = sum(wire.OBJECT_FRAME.size + (s.size or 0) for s in statuses)
    await response.prepare(request)
    sent = request.app[METRICS].bytes_out
    for status in statuses:
        await response.write(wire.object_frame(status.index, status.size or 0))
        async for block in store.read(transfer_id, status.index, 0):
            await response.write(block)
            sent.inc(len(block))
    await response.write_eof()
    return response
