"""Keeping one received instance, however it came (a C-STORE, a WADO-RS part): write it to the
spool and flush it to disk, check it, move it among the kept ones, and hand it to the group
commit on the asyncio loop, waiting on the calling thread: images arriving together share one
flush of the spool folder and one index transaction (`group_commit`), and the answer is only
given once the image is on disk and indexed.

`Keeper.keep` blocks: call it from a thread that is not the loop's (pynetdicom's handlers, or
an executor of the caller's own: never the loop's default one, which `_kept_durably` needs).

A push in the same process that follows a study (`follow.SpooledStudy`) takes the description
the checks made of each kept image (`described`), so it is parsed once, not again, and waits
for the next group commit (`next_kept`) rather than polling the index.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import warnings
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble

from sending_site import collect
from sending_site.collect import Instance
from sending_site.inbox import arrival
from sending_site.inbox.arrival import Refusal
from sending_site.inbox.group_commit import GroupCommit
from sending_site.inbox.index import InboxIndex, Kept
from sending_site.inbox.spool import Spool, new_id

INDEX_WAIT = 30.0  # seconds a caller waits for the index commit before answering failure
# Descriptions held for a following push; the oldest go first (a push not following reads
# the file again). About a kilobyte each.
DESCRIBED_HELD = 10_000
# Bytes (file meta and data set): an image up to this size is checked from the bytes just
# written to the spool; a bigger one is read back from its spool file, so that its bytes are
# not held a second time (joined to our file meta) while it is parsed.
CHECKED_IN_MEMORY = 32 * 2**20
# `warnings.catch_warnings` (which `collect.read_checked` uses) swaps process-wide state, so
# images are parsed one at a time; parsing holds the GIL anyway.
_PARSING = threading.Lock()


class Keeper:
    """The inbox's one way in: the spool, its index and the group commit they share."""

    def __init__(self, spool: Spool, index: InboxIndex, loop: asyncio.AbstractEventLoop) -> None:
        self._spool = spool
        self._index = index
        self._loop = loop
        self._group = GroupCommit(self._kept_durably)
        self._described: dict[Path, Instance] = {}
        self._described_lock = threading.Lock()
        self._kept = asyncio.Event()  # set by the next group commit, then replaced

    def next_kept(self) -> asyncio.Event:
        """An event set once the next group commit has indexed images (on the loop). Take it
        before reading the index: what a commit indexes after the read still sets it."""
        return self._kept

    def described(self, path: Path) -> Instance | None:
        """What the checks found in the kept file at `path` (once: it is then forgotten), or
        None if this keeper did not keep it or no longer holds its description."""
        with self._described_lock:
            return self._described.pop(path, None)

    def _describe(self, path: Path, instance: Instance | None) -> None:
        with self._described_lock:
            if instance is None:
                self._described.pop(path, None)
                return
            self._described[path] = instance
            while len(self._described) > DESCRIBED_HELD:
                del self._described[next(iter(self._described))]

    def keep(
        self,
        data: bytes | memoryview,
        *,
        sop_class: str,
        sop_instance: str,
        transfer_syntax: str,
        source: str,
        said_by: str,
    ) -> tuple[int, str]:
        """Keep the data set `data`, in `transfer_syntax`, which `said_by` ("request's
        Affected", "part's Media Storage") says is the instance `sop_class`/`sop_instance`,
        from `source` (an AE title). The spool file starts with a file meta of our own
        (`arrival.part10_header`), never the sender's. Returns (C-STORE status, reason for
        the log: empty when kept)."""
        for name, value in (
            (f"{said_by} SOP Class UID", sop_class),
            (f"{said_by} SOP Instance UID", sop_instance),
            ("Transfer Syntax UID", transfer_syntax),
        ):
            bad = arrival.bad_uid(name, value)
            if bad:
                return bad.status, bad.reason
        header = arrival.part10_header(sop_class, sop_instance, transfer_syntax, source)
        instance_id = new_id()
        size = len(header) + len(data)
        # Checked from the bytes written, not read back from the disk (`CHECKED_IN_MEMORY`).
        whole = header + data if size <= CHECKED_IN_MEMORY else None
        try:
            incoming = self._spool.write_incoming(
                instance_id, (header, data) if whole is None else (whole,)
            )
        except OSError as e:
            return arrival.OUT_OF_RESOURCES, f"the spool cannot be written ({e.strerror or e})"
        try:
            with _PARSING, warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                ds = (
                    collect.read_checked(incoming)
                    if whole is None
                    else collect.parse_checked(whole, transfer_syntax)
                )
                found = arrival.describe(
                    ds,
                    instance_id=instance_id,
                    transfer_syntax_uid=transfer_syntax,
                    size=size,
                    arrived_at=time.time(),
                    calling_ae_title=source,
                )
                described = collect.instance_of(self._spool.path_of(instance_id), ds, size)
        except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError) as e:
            self._spool.discard(incoming)
            return arrival.CANNOT_UNDERSTAND, f"its data set is damaged ({e})"
        refused = arrival.refusal(found, sop_class, sop_instance)
        if refused:
            self._spool.discard(incoming)
            return refused.status, refused.reason
        kept = self._spool.keep(incoming, instance_id, flush=False)  # flushed in `_indexed`
        self._describe(kept, described)
        outcome = self._indexed(found)
        if outcome is None:
            return arrival.OUT_OF_RESOURCES, "the index did not answer in time"
        if isinstance(outcome, Refusal):
            self._describe(kept, None)
            self._spool.discard(kept)
            return outcome.status, outcome.reason
        if outcome.replaced:
            replaced = self._spool.path_of(outcome.replaced)
            self._describe(replaced, None)
            self._spool.discard(replaced)
        return arrival.SUCCESS, ""

    def keep_file(self, data: bytes | bytearray, source: str) -> tuple[int, str]:
        """Keep a whole Part 10 file (a WADO-RS part), as `keep` does: its file meta says what
        it is and how it is encoded, and is then replaced by our own."""
        fp = BytesIO(data)
        try:
            with _PARSING, warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                read_preamble(fp, False)
                meta = _read_file_meta_info(fp)
        except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError, struct.error) as e:
            return arrival.CANNOT_UNDERSTAND, f"it is not a DICOM file ({e})"
        return self.keep(
            memoryview(data)[fp.tell() :],
            sop_class=str(meta.get("MediaStorageSOPClassUID", "")),
            sop_instance=str(meta.get("MediaStorageSOPInstanceUID", "")),
            transfer_syntax=str(meta.get("TransferSyntaxUID", "")),
            source=source,
            said_by="file meta's Media Storage",
        )

    def _indexed(self, found: arrival.Arrival) -> Kept | Refusal | None:
        """The index's answer once the kept file and its index row are durable, or None if
        it did not come in time: the file then stays, as the commit may still happen; if not,
        the next start indexes it (`service`)."""
        future = asyncio.run_coroutine_threadsafe(self._group.submit(found), self._loop)
        try:
            return future.result(INDEX_WAIT)
        except TimeoutError:
            return None

    async def _kept_durably(self, arrivals: Sequence[arrival.Arrival]) -> list[Kept | Refusal]:
        """One group commit: the moves into `instances/` first (a committed index row never
        names a file a crash could lose), then every index row in one transaction, both on
        one worker thread."""
        try:
            return await self._index.record_all(
                arrivals, first=self._spool.flush_kept, same=self._spool.same_data_set
            )
        finally:
            kept, self._kept = self._kept, asyncio.Event()
            kept.set()
