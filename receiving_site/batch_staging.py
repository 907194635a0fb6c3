"""Small objects fetched several to a request (`RelayClient.download_batch`), then opened,
checked against the manifest and staged as `staging.stage_object` stages one: the relay's
work per image, and ours, is mostly per request. A large object is fetched alone, so a lost
connection resumes it where it was cut instead of starting the batch again.

A batch's objects are opened in memory (each at most `SMALL_OBJECT` bytes, so a batch holds at
most `BATCH_BYTES` of plaintext) and written to the staging folder, each made durable and
renamed into place, in one trip to a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from pathlib import Path

from receiving_site import errors, staging
from receiving_site.staging import PREAMBLE, RETRIES, StagedObject, staged_path
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes import wire
from transfer_codes.errors import TransferCodeError
from transfer_codes.manifest import ManifestEntry
from transfer_codes.sealed import ObjectOpener

SMALL_OBJECT = 1024 * 1024  # an image of at most this many bytes goes in a batch
BATCH_BYTES = 4 * 1024 * 1024  # at most this many bytes of images in one batch


def batches(entries: list[ManifestEntry], parallel: int) -> list[list[ManifestEntry]]:
    """`entries` split into requests: each large object alone; small ones in order, in batches
    of at most `wire.BATCH_OBJECTS` and `BATCH_BYTES`, and small enough that there are
    `parallel` batches when there are that many small objects (requests run side by side)."""
    large = [[e] for e in entries if e.size > SMALL_OBJECT]
    small = [e for e in entries if e.size <= SMALL_OBJECT]
    most = min(wire.BATCH_OBJECTS, max(1, math.ceil(len(small) / parallel)))
    out: list[list[ManifestEntry]] = []
    batch: list[ManifestEntry] = []
    size = 0
    for e in small:
        if batch and (len(batch) == most or size + e.size > BATCH_BYTES):
            out.append(batch)
            batch, size = [], 0
        batch.append(e)
        size += e.size
    if batch:
        out.append(batch)
    return large + out


async def stage_batch(
    client: RelayClient,
    transfer_id: str,
    data_key: bytes,
    entries: list[ManifestEntry],
    folder: Path,
) -> list[StagedObject]:
    """Fetch, open, check and stage `entries` (in that order in the answer), asking again for
    those not yet whole after a lost connection. A single one, or a large one, goes through
    `staging.stage_object`. Raises `VerificationFailed`."""
    if len(entries) == 1:
        return [await staging.stage_object(client, transfer_id, data_key, entries[0], folder)]
    staged = {e.index: StagedObject(e, staged_path(folder, e.index)) for e in entries}
    left = [e for e in entries if not staged[e.index].path.exists()]
    attempts = 0
    while left:
        opened: list[tuple[ManifestEntry, bytes]] = []
        try:
            await _fetch(client, transfer_id, data_key, left, opened)
        except RelayUnreachable:
            attempts += 1
            if attempts > RETRIES:
                raise
            await asyncio.sleep(min(2**attempts * 0.25, 5))
        finally:
            # What was whole before a connection was lost is kept, not fetched again.
            await asyncio.to_thread(_write_all, folder, opened)
        done = {e.index for e, _ in opened}
        left = [e for e in left if e.index not in done]
    return [staged[e.index] for e in entries]


async def _fetch(
    client: RelayClient,
    transfer_id: str,
    data_key: bytes,
    entries: list[ManifestEntry],
    opened: list[tuple[ManifestEntry, bytes]],
) -> None:
    """Open `entries` as their bytes come, appending each to `opened` once checked whole (the
    client yields them in the order asked)."""
    by_index = {e.index: e for e in entries}
    pieces: _Pieces | None = None
    try:
        async for index, block in client.download_batch(transfer_id, list(by_index)):
            if pieces is None:
                pieces = _Pieces(by_index[index], ObjectOpener(data_key, transfer_id, index))
            if block:
                pieces.feed(block)
            else:
                opened.append((pieces.entry, pieces.finish()))
                pieces = None
    except RelayRefused as e:
        raise staging.download_refused(e, entries[len(opened)]) from e
    except TransferCodeError as e:
        raise errors.VerificationFailed(
            f"Image {entries[len(opened)].index + 1} failed verification ({e}). Nothing was "
            "stored in the PACS. Call the sending hospital."
        ) from e


class _Pieces:
    """One object's plaintext as it is opened, no more of it than the manifest lists."""

    def __init__(self, entry: ManifestEntry, opener: ObjectOpener) -> None:
        self.entry = entry
        self.opener = opener
        self.parts: list[bytes] = []
        self.size = 0

    def feed(self, block: bytes) -> None:
        self._keep(self.opener.feed(block))

    def finish(self) -> bytes:
        self._keep(self.opener.finish())
        plain = b"".join(self.parts)
        if len(plain) != self.entry.size or hashlib.sha256(plain).hexdigest() != self.entry.sha256:
            raise _mismatch(self.entry)
        return plain

    def _keep(self, plain: bytes) -> None:
        self.size += len(plain)
        if self.size > self.entry.size:
            raise _mismatch(self.entry)
        self.parts.append(plain)


def _mismatch(entry: ManifestEntry) -> errors.VerificationFailed:
    return errors.VerificationFailed(
        f"Image {entry.index + 1} does not match the manifest (size or checksum). Nothing was "
        "stored in the PACS. Call the sending hospital."
    )


def _write_all(folder: Path, opened: list[tuple[ManifestEntry, bytes]]) -> None:
    """Stage each checked object as `stage_object` does: the preamble zeroed, durable, then
    renamed into place."""
    for entry, plain in opened:
        final = staged_path(folder, entry.index)
        partial = final.with_suffix(".part")
        with partial.open("wb") as out:
            out.write(bytes(min(PREAMBLE, len(plain))))
            out.write(memoryview(plain)[PREAMBLE:])
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
