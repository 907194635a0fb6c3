"""Push a study: collect and validate, create the transfer, seal every instance and upload it
(resumable), append each instance to the sealed manifest, and close the manifest.

Events go to `on_event` so the command line (or the ER console) can show progress; the code and
QR are ready (`Ready`) as soon as the keys are installed, before the upload finishes, so the
family and the trauma center can act while it runs (cut-through).

What to do is decided by a pure plan (`plan.PushPlan`): resume the live transfer of the same
study, stop at a delivered one, give up what the relay can no longer finish, replace, withdraw.
This module carries its decisions out (`_Sending`) against the relay, the files and the journal,
and tells the plan what happened. Upload requests are retried while the relay is briefly out of
reach (`retry`).

A study still arriving (`PushRequest.source`, cut-through from the inbox) is followed: what has
arrived is uploaded at once, each new image is journaled under the next index and uploaded too,
and the manifest is closed only once the source says the study is complete. Its summary is
sealed first, before the study is whole, so it gives no image or series counts (0: unknown);
the closing record alone says how many images there are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from sending_site import abandon, batch_upload, collect, decisions, errors, journal, phone
from sending_site.abandon import NoAnswer, Seen
from sending_site.collect import Collection, Instance
from sending_site.decisions import Ready
from sending_site.plan import PushPlan
from sending_site.source import Arrivals, StudySource
from site_agent import retry
from site_agent.client import Holdings, RelayClient, RelayRefused, RelayUnreachable
from site_agent.errors import AgentError, outcome_unknown
from transfer_codes import wire
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.keys import (
    StretchedSecret,
    lock_with_capability,
    lock_with_code,
    new_data_key,
)
from transfer_codes.manifest import (
    MAX_FILE_NAME_LENGTH,
    MAX_OMITTED_NAMES,
    ManifestEntry,
    ManifestWriter,
    StudySummary,
)
from transfer_codes.notes import seal_note
from transfer_codes.phone import new_phone_key
from transfer_codes.sealed import ObjectSealer, sealed_size
from transfer_codes.tokens import new_token
from transfer_codes.wire import Problem

__all__ = [
    "BreakGlassAnswered",
    "Progress",
    "PushEvent",
    "PushRequest",
    "PushResult",
    "Ready",
    "break_glass",
    "install_locks",
    "push",
    "seen_by_relay",
]

SEGMENT_BYTES = 8 * 1024 * 1024  # one PATCH; the unit of resumption
READ_BYTES = 1024 * 1024
PARALLEL_OBJECTS = 8  # each holds up to two segments; 8 keeps a loopback relay busy
# A followed study is asked for more images once fewer uploads than this are unfinished: the
# uploads always have work waiting, and images that arrive meanwhile are added (journaled) in
# one go rather than a few at a time.
GROW_BELOW = 2 * PARALLEL_OBJECTS

T = TypeVar("T")
Grow = Callable[[], Coroutine[Any, Any, list[Instance] | None]]  # more images; None once complete


@dataclass(frozen=True)
class PushRequest:
    paths: list[Path]
    relay: str
    recipient: str
    credential: str
    state_dir: Path
    break_glass_reason: str | None = None
    clinician: str | None = None
    expires_in: int | None = None
    replace: bool = False  # replace a live or delivered transfer of the same study
    skip_damaged: bool = False  # send the rest when files are damaged; the manifest says so
    # A study still arriving: `paths` (may be empty) and then what the source names are sent,
    # and the manifest stays open until the source says the study is complete.
    source: StudySource | None = None
    # The code's secret, being stretched while the study is read (`keys.stretch_ahead`), for
    # the transfer this push makes (if it makes one); else the code is stretched when locked.
    stretched: concurrent.futures.Future[StretchedSecret] | None = None


@dataclass(frozen=True)
class Progress:
    objects_done: int
    objects_total: int
    bytes_done: int
    bytes_total: int


@dataclass(frozen=True)
class Retrying:
    """The relay could not be reached (`reason`, in words); trying again in `delay` seconds."""

    delay: float
    reason: str


@dataclass(frozen=True)
class BreakGlassAnswered:
    """What became of the break-glass this push sent for `transfer_id`, told as soon as it is
    known, before the code is shown (a push stopped later never shows it), so that what
    reached the relay is audited: `outcome` success (added), refused (not added; `why` names
    what refused it: the relay, or a relay out of reach before the request left), or unknown
    (the request left and no answer came: the relay out of reach, `why` RelayUnreachable, or
    the push stopped while it waited, `why` interrupted; the next push or break-glass of the
    transfer finds it added, or adds it)."""

    transfer_id: str
    outcome: str
    why: str = ""


@dataclass(frozen=True)
class PushResult:
    ready: Ready
    instances: int
    bytes: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[tuple[Path, str]] = field(default_factory=list)  # sent, but worth knowing
    # A followed study that staff stopped following before it was complete: the manifest
    # says so, and the trauma center will not take it for the whole study.
    incomplete: bool = False


PushEvent = Ready | Progress | Retrying | BreakGlassAnswered


def omitted_names(c: Collection) -> tuple[str, ...]:
    """The file names (never their folders, which may name the patient) of what was left out,
    as many as the manifest's summary lists, each shortened to fit."""
    limit = MAX_FILE_NAME_LENGTH
    return tuple(
        p.name if len(p.name) <= limit else p.name[: limit - 1] + "…"
        for p, _ in c.omitted[:MAX_OMITTED_NAMES]
    )


def _summary(
    c: Collection, sending_site: str, break_glass: bool, *, growing: bool = False
) -> StudySummary:
    """The manifest's summary of `c`; of a study still arriving (`growing`), without image and
    series counts, which are not known yet."""
    first = c.instances[0]
    summary = StudySummary(
        patient_name=first.patient_name,
        patient_id=first.patient_id,
        issuer_of_patient_id=first.issuer_of_patient_id,
        patient_birth_date=first.patient_birth_date,
        patient_sex=first.patient_sex,
        study_instance_uid=first.study_instance_uid,
        study_date=first.study_date,
        study_description=first.study_description,
        accession_number=first.accession_number,
        modalities=tuple(sorted({i.modality for i in c.instances if i.modality})),
        series_count=len({i.series_instance_uid for i in c.instances}),
        instance_count=len(c.instances),
        sending_site=sending_site,
        break_glass=break_glass,
        series=collect.series_summaries(c.instances),
        study_time=first.study_time,
        omitted=omitted_names(c),
        omitted_count=len(c.omitted),
    )
    return replace(summary, instance_count=0, series_count=0, series=()) if growing else summary


def _ciphertext(
    f: BinaryIO, data_key: bytes, transfer_id: str, index: int, plain_hash: hashlib._Hash
) -> Iterator[bytes]:
    sealer = ObjectSealer(data_key, transfer_id, index, plain_hash=plain_hash)
    while block := f.read(READ_BYTES):
        out = sealer.feed(block)
        if out:
            yield out
    yield sealer.finish()


def _segments(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Regroup ciphertext into bounded segments (never a whole object in memory)."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= SEGMENT_BYTES:
            joined = b"".join(pending)
            yield joined[:SEGMENT_BYTES]
            rest = joined[SEGMENT_BYTES:]
            pending, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield b"".join(pending)


def _opened(instance: Instance, spooled: bool) -> BinaryIO:
    """`instance`'s file, opened to be sent. If it is gone since it was read: from a folder
    (removed, moved away, its disc taken out), `FileGone`, the transfer left as it is, to be
    resumed once it is back; from the inbox's spool (`spooled`), which never gives a file
    back, `FileChanged`, which withdraws the transfer."""
    try:
        return instance.path.open("rb")
    except FileNotFoundError as e:
        if spooled:
            series = f" of series {instance.series_number}" if instance.series_number else ""
            raise errors.FileChanged(
                f"An image{series} left the inbox before it was sent (the PACS sent it again, "
                "changed, or it was removed)."
            ) from e
        raise errors.FileGone(
            f"{instance.path} was removed after it was read, before it was sent. Put it back "
            "where it was (the disc, the drive) and run the same command again: it resumes "
            "with the same code."
        ) from e


def _sealed_whole(
    instance: Instance, data_key: bytes, transfer_id: str, index: int, spooled: bool
) -> tuple[bytes, str, str]:
    """A small instance sealed whole: (sealed bytes, plaintext SHA-256, sealed SHA-256)."""
    plain_hash = hashlib.sha256()
    with _opened(instance, spooled) as f:
        sealed = b"".join(_ciphertext(f, data_key, transfer_id, index, plain_hash))
        if f.tell() != instance.size:
            raise errors.FileChanged(
                f"{instance.path} changed while it was being sent; send the study again."
            )
    return sealed, plain_hash.hexdigest(), hashlib.sha256(sealed).hexdigest()


def _first_two(segments: Iterator[bytes]) -> tuple[bytes | None, bytes | None]:
    first = next(segments, None)
    return first, None if first is None else next(segments, None)


class _Uploader:
    def __init__(
        self,
        client: RelayClient,
        transfer_id: str,
        data_key: bytes,
        on_event: Callable[[PushEvent], None],
        total_bytes: int,
        total_objects: int,
        *,
        spooled: bool = False,
    ) -> None:
        self.client = client
        self.transfer_id = transfer_id
        self.spooled = spooled  # the files are the inbox's (`_opened`)
        self.data_key = data_key
        self.on_event = on_event
        self.bytes_done = 0
        self.objects_done = 0
        self.total_bytes = total_bytes
        self.total_objects = total_objects
        self.limit = asyncio.Semaphore(PARALLEL_OBJECTS)
        self.batches = batch_upload.BatchUploads(client, transfer_id, self.announce_wait)

    def grew(self, more: list[Instance]) -> None:
        """More images of a followed study are to be sent."""
        self.total_bytes += sum(i.size for i in more)
        self.total_objects += len(more)

    def announce_wait(self, delay: float, e: RelayUnreachable) -> None:
        self.on_event(Retrying(delay, e.reason))

    def _progress(self) -> None:
        self.on_event(
            Progress(self.objects_done, self.total_objects, self.bytes_done, self.total_bytes)
        )

    async def _append(
        self, index: int, start: int, segment: bytes, held: int, digest: str | None
    ) -> tuple[int, bool]:
        """Send `segment` (sealed bytes from offset `start`) from the relay's offset `held`;
        with `digest` (of the whole sealed object, which this segment ends) the PATCH also
        completes the object. Returns the relay's offset and whether the object is complete.

        A PATCH whose answer was lost may or may not have been stored, so after a lost
        connection this waits (`retry.DELAYS`) and asks the relay what it holds; on an offset
        conflict it continues from the offset the relay names."""
        end = start + len(segment)
        waits = retry.delays()
        ask = False  # whether to ask the relay what it holds before sending again
        while held < end:
            if held < start:  # the stream cannot go back; a new run re-seals from the start
                facts = f"The relay holds less of image {index} than it had acknowledged."
                then = "it resumes from what the relay holds."
                raise errors.UploadInterrupted(
                    f"{facts} Run the same command again: {then}",
                    console=f"{facts} Upload again with the button below: {then}",
                )
            try:
                if ask:
                    holdings = await self.client.holdings(self.transfer_id)
                    ask = False
                    if index in holdings.complete:
                        return end, True
                    held = holdings.offsets.get(index, 0)
                    continue
                answer = await self.client.append(
                    self.transfer_id,
                    index,
                    segment[held - start :],
                    held,
                    ends_at=end if digest is not None else None,
                    sha256=digest,
                )
                return answer.offset, answer.complete
            except RelayUnreachable as e:
                delay = next(waits, None)
                if delay is None:
                    raise
                self.on_event(Retrying(delay, e.reason))
                await asyncio.sleep(delay)
                ask = True
            except RelayRefused as e:
                offset = e.extra.get("offset")
                if e.code != Problem.UPLOAD_OFFSET_MISMATCH or not isinstance(offset, int):
                    raise
                if next(waits, None) is None:  # bounded too: two pushes may be at odds
                    raise
                held = offset
        return held, False

    def _done(self, instance: Instance) -> None:
        self.bytes_done += instance.size
        self.objects_done += 1
        self._progress()

    async def _batched(self, index: int, instance: Instance) -> str:
        """Seal a small instance whole and send it in a batch (`batch_upload`); if the relay
        refuses the batch, send the same sealed bytes on their own. Returns the plaintext
        SHA-256 (the manifest entry's)."""
        async with self.limit:  # the queue's room is waited for here: it bounds what is sealed
            sealed, plain, cipher = await asyncio.to_thread(
                _sealed_whole, instance, self.data_key, self.transfer_id, index, self.spooled
            )
            done = await self.batches.add(index, sealed, cipher)
        try:
            await done
        except RelayRefused as e:
            if e.status in (404, 405):  # a relay older than batch uploads
                self.batches.enabled = False
            # The bytes already sealed, never sealed again: a second sealing of a file that
            # changed meanwhile would reuse the key stream.
            _, complete = await self._append(index, 0, sealed, 0, cipher)
            if not complete:
                await retry.retrying(
                    functools.partial(
                        self.client.complete_object, self.transfer_id, index, len(sealed), cipher
                    ),
                    self.announce_wait,
                )
        self._done(instance)
        return plain

    async def object(self, index: int, instance: Instance, held: int, complete: bool) -> str:
        """Seal and upload one instance from the relay's offset `held`; returns the plaintext
        SHA-256 (the manifest entry's). A small one (of one segment) the relay holds nothing of
        goes in a batch."""
        if (
            not complete
            and held == 0
            and self.batches.enabled
            and sealed_size(instance.size) <= min(batch_upload.SMALL_OBJECT, SEGMENT_BYTES)
        ):
            return await self._batched(index, instance)
        async with self.limit:
            plain_hash = hashlib.sha256()
            cipher_hash = hashlib.sha256()
            position = 0
            with _opened(instance, self.spooled) as f:
                segments = _segments(
                    _ciphertext(f, self.data_key, self.transfer_id, index, plain_hash)
                )
                # One segment ahead, so the last PATCH can also complete the object; the first
                # two in one go (most images are one segment: one hand-off to a thread, not two).
                segment, following = await asyncio.to_thread(_first_two, segments)
                while segment is not None:
                    cipher_hash.update(segment)
                    end = position + len(segment)
                    if not complete and end > held:
                        digest = cipher_hash.hexdigest() if following is None else None
                        held, complete = await self._append(index, position, segment, held, digest)
                    position = end
                    segment = following
                    if segment is not None:
                        following = await asyncio.to_thread(next, segments, None)
                if f.tell() != instance.size:
                    raise errors.FileChanged(
                        f"{instance.path} changed while it was being sent; send the study again."
                    )
            if not complete:  # the relay held every byte but had not completed the object
                await retry.retrying(
                    functools.partial(
                        self.client.complete_object,
                        self.transfer_id,
                        index,
                        position,
                        cipher_hash.hexdigest(),
                    ),
                    self.announce_wait,
                )
            self._done(instance)
            return plain_hash.hexdigest()


async def install_locks(
    client: RelayClient,
    record: journal.TransferJournal,
    path: str,
    ahead: StretchedSecret | None = None,
) -> None:
    """Lock the transfer's data key with its code and its capability (`path` "locks"), or
    re-lock it (`path` "reissue"). `ahead`: the code's secret stretched already, if it is this
    code's."""
    code = RedemptionCode.parse(record.code)
    capability = Capability.parse(record.capability)
    locks: dict[str, object] = {
        "code": lock_with_code(record.data_key, record.transfer_id, code, ahead).to_json(),
        "capability": lock_with_capability(
            record.data_key, record.transfer_id, capability
        ).to_json(),
    }
    if path == "locks":
        await client.install_locks(record.transfer_id, locks, record.authorization_token)
    else:
        await client.reissue(record.transfer_id, locks)


async def push(
    req: PushRequest, on_event: Callable[[PushEvent], None], collection: Collection | None = None
) -> PushResult:
    """Send a study (`collection`, when the caller already collected `req.paths` to show it);
    safe to run again after any interruption (it resumes).

    Raises `AlreadyDelivered` or `AlreadySent` when an earlier transfer of the study stands in
    the way (nothing is sent), `TransferDeclined` when the patient or family said no on their
    phone, `TransferWithdrawn` when the transfer can never be finished (it is then revoked),
    `RelayUnreachable` when the relay stays out of reach (run again: it resumes)."""
    c = collection
    growing = stopped = False
    if req.source is not None:
        c, first = await _first_arrivals(req, c)
        growing = not (first.complete or first.stopped)
        stopped = first.stopped
    elif c is None:
        c = await asyncio.to_thread(
            functools.partial(collect.collect, req.paths, skip_damaged=req.skip_damaged)
        )
    objects = await asyncio.to_thread(_journal_objects, c.instances)
    wanted = decisions.Wanted(
        relay=req.relay.rstrip("/"),
        recipient=req.recipient,
        patient=abandon.patient_digest(c),
        patient_label=abandon.patient_label(c),
        studies=abandon.study_digests(c),
        objects=tuple(objects),
        replace=req.replace,
        break_glass=(req.break_glass_reason, req.clinician or "")
        if req.break_glass_reason
        else None,
        study_description="; ".join(
            sorted({i.study_description for i in c.instances if i.study_description})
        ),
        series_count=len({i.series_instance_uid for i in c.instances}),
        following=req.source is not None,
    )

    def announce_wait(delay: float, e: RelayUnreachable) -> None:
        on_event(Retrying(delay, e.reason))

    async with RelayClient(req.relay, req.credential) as client:
        # The first requests wait out a relay briefly out of reach (a restart, a blip just as
        # the nurse pressed Send) as the later ones do: they only read.
        await retry.retrying(client.health, announce_wait)
        plan = PushPlan(wanted, journal.every(req.state_dir), new_phone_key())
        answers = {
            j.transfer_id: await retry.retrying(
                functools.partial(seen_by_relay, client, j.transfer_id), announce_wait
            )
            for j in plan.candidates
        }
        sending = _Sending(client, req, c, plan, on_event, growing=growing, stopped=stopped)
        await sending.carry_out(plan.statuses_received(answers))
    if sending.ready is None:  # the plan shows the code before it finishes
        raise errors.SendingError("Internal error: the push ended without a code.")
    return PushResult(
        sending.ready,
        len(c.instances),
        sum(i.size for i in c.instances),
        c.skipped,
        c.notes,
        incomplete=sending.stopped,
    )


def _journal_objects(instances: list[Instance]) -> list[journal.JournalObject]:
    return [
        journal.JournalObject(i, str(inst.path), inst.size, inst.path.stat().st_mtime_ns)
        for i, inst in enumerate(instances)
    ]


async def _first_arrivals(
    req: PushRequest, given: Collection | None
) -> tuple[Collection, Arrivals]:
    """What a followed push starts with: `given` (or the collection of `req.paths`) and what
    the source names beyond it, waiting for a first image if there is none yet; and what the
    source said last (whether the study is complete, or staff stopped following it)."""
    source = cast(StudySource, req.source)
    c = given
    if c is None and req.paths:
        c = await asyncio.to_thread(
            functools.partial(collect.collect, req.paths, skip_damaged=req.skip_damaged)
        )
    while True:
        arrived = await source.arrivals()
        if c is None:
            if arrived.paths:
                # As the source's checks described them; only the rest are read here.
                described = {i.path: i for i in arrived.described}
                c = await asyncio.to_thread(
                    functools.partial(collect.collect, list(arrived.paths), described=described)
                )
                return c, arrived
            if arrived.complete or arrived.stopped:
                raise errors.NoDicomFound()
            continue
        more = await asyncio.to_thread(_newcomers, c, arrived)
        c.instances.extend(more)
        return c, arrived


def _newcomers(c: Collection, arrived: Arrivals) -> list[Instance]:
    """The images `arrived` names that `c` lacks, read and checked (or as the source's own
    checks described them). An image that is already in `c` under another file (resent to
    the inbox) is sent once; one whose file is gone (its copy was replaced meanwhile) is left
    to the copy that replaced it."""
    known = {str(i.path) for i in c.instances}
    uids = {i.sop_instance_uid for i in c.instances}
    described = {i.path: i for i in arrived.described}
    found: list[Instance] = []
    for path in arrived.paths:
        if str(path) in known:
            continue
        try:
            instance = described.get(path) or collect.read_instance(path)
            if not path.exists():
                continue
        except FileNotFoundError:
            continue
        if instance.sop_instance_uid in uids:
            c.skipped.append((path, "the same image appears twice; sent once"))
            continue
        uids.add(instance.sop_instance_uid)
        found.append(instance)
    return found


async def seen_by_relay(client: RelayClient, transfer_id: str) -> Seen | None:
    """How the relay describes a transfer to its sender; None when it has no record of it."""
    try:
        return Seen.from_status(await client.status(transfer_id))
    except RelayRefused as e:
        if e.code == Problem.NOT_FOUND:
            return None
        raise


def _new_transfer(
    created: dict[str, Any], ahead: StretchedSecret | None = None
) -> decisions.NewTransfer:
    """The relay's answer to creating a transfer, with fresh secrets for it (the code's secret
    from `ahead`, drawn and stretched already, if given)."""
    transfer_id, locator = str(created["transfer_id"]), int(created["locator"])
    code = RedemptionCode.generate(locator) if ahead is None else ahead.code(locator)
    return decisions.NewTransfer(
        transfer_id=transfer_id,
        locator=locator,
        expires_at=float(created["expires_at"]),
        data_key=new_data_key(),
        code=code.compact(),
        capability=Capability.generate(transfer_id).to_text(),
        authorization_token=new_token(),
        phone_key=new_phone_key(),
    )


class _ManifestOut:
    """The manifest records the relay does not hold yet, sent in order by one task at a time,
    as many per request as are ready (`wire.BATCH_RECORDS`, `wire.BATCH_BYTES`): records sealed
    while a request is on its way go together in the next. One record per request to a relay
    that does not know batches (405)."""

    def __init__(
        self, client: RelayClient, transfer_id: str, held: int, on_wait: retry.OnWait
    ) -> None:
        self.client = client
        self.transfer_id = transfer_id
        self.held = held  # the relay holds records 0 .. held - 1
        self.on_wait = on_wait
        self.queue: list[tuple[int, bytes]] = []
        self.closing: int | None = None  # the closing record's seq, once sealed
        self.sending: asyncio.Task[None] | None = None
        self.batches = True

    def add(self, seq: int, data: bytes, *, final: bool = False) -> None:
        if final:
            self.closing = seq
        if seq >= self.held:
            self.queue.append((seq, data))

    def kick(self) -> asyncio.Task[None] | None:
        """The task sending the queue: started if there is something to send; a failure of the
        last one is raised here."""
        if self.sending is not None and self.sending.done():
            done, self.sending = self.sending, None
            done.result()
        if self.sending is None and self.queue:
            self.sending = asyncio.create_task(self._send())
        return self.sending

    async def flush(self) -> None:
        """Until the relay holds every record added."""
        while (sending := self.kick()) is not None:
            await asyncio.wait({sending})

    def cancel(self) -> None:
        if self.sending is not None:
            self.sending.cancel()

    def _batch(self) -> list[tuple[int, bytes]]:
        if not self.batches:
            return self.queue[:1]
        size = 0
        for n, (_, data) in enumerate(self.queue[: wire.BATCH_RECORDS]):
            size += wire.LENGTH_PREFIX + len(data)
            if size > wire.BATCH_BYTES:
                return self.queue[: max(n, 1)]
        return self.queue[: wire.BATCH_RECORDS]

    async def _send(self) -> None:
        while self.queue:
            batch = self._batch()
            first = batch[0][0]
            final = batch[-1][0] == self.closing
            # An identical record again is accepted, so a lost answer is safe to repeat.
            try:
                if len(batch) == 1:
                    call = functools.partial(
                        self.client.put_manifest_record,
                        self.transfer_id,
                        first,
                        batch[0][1],
                        final=final,
                    )
                else:
                    call = functools.partial(
                        self.client.put_manifest_records,
                        self.transfer_id,
                        first,
                        [data for _, data in batch],
                        final=final,
                    )
                await retry.retrying(call, self.on_wait)
            except RelayRefused as e:
                if e.status != 405 or not self.batches:
                    raise
                self.batches = False  # a relay older than batches: one record at a time
                continue
            del self.queue[: len(batch)]


async def _upload(
    client: RelayClient,
    instances: list[Instance],
    summary: StudySummary,
    record: journal.TransferJournal,
    holdings: Holdings,
    on_event: Callable[[PushEvent], None],
    grow: Grow | None = None,
    stopped: Callable[[], bool] = lambda: False,
    *,
    spooled: bool = False,
) -> None:
    """Seal and send every object the relay does not hold (`holdings`), `instances[i]` under
    index i, then the manifest records it lacks, the closing one last. With `grow`, more
    images are asked for meanwhile, whenever fewer than `GROW_BELOW` uploads are unfinished
    (journaled under the next indices before `grow` returns them), and the manifest is closed
    once `grow` says the study is complete, marked incomplete when `stopped()` says staff
    stopped following it before. Manifest records go while objects upload, in batches of
    those ready (`_ManifestOut`)."""
    writer = ManifestWriter(record.data_key, record.transfer_id)
    uploader = _Uploader(
        client,
        record.transfer_id,
        record.data_key,
        on_event,
        sum(i.size for i in instances),
        len(instances),
        spooled=spooled,
    )
    manifest = _ManifestOut(
        client, record.transfer_id, holdings.manifest_records, uploader.announce_wait
    )
    manifest.add(*writer.summary(summary))

    tasks: list[asyncio.Task[str]] = []

    def start(batch: list[Instance]) -> None:
        for inst in batch:
            i = len(tasks)
            tasks.append(
                asyncio.create_task(
                    uploader.object(i, inst, holdings.offsets.get(i, 0), i in holdings.complete)
                )
            )

    growing: asyncio.Task[list[Instance] | None] | None = None
    more_to_come = grow is not None  # until `grow` says the study is complete
    entered = 0  # objects whose manifest entry is written
    try:
        await manifest.flush()
        start(instances)
        while entered < len(tasks) or growing is not None or more_to_come:
            if growing is not None and growing.done():
                more = growing.result()
                growing = None
                if more is None:
                    more_to_come = False
                else:
                    instances = [*instances, *more]
                    uploader.grew(more)
                    start(more)
                continue
            if (
                grow is not None
                and more_to_come
                and growing is None
                and sum(not task.done() for task in tasks[entered:]) < GROW_BELOW
            ):
                growing = asyncio.create_task(grow())
            waiting = {tasks[entered]} if entered < len(tasks) else set()
            sending = manifest.kick()
            await asyncio.wait(
                waiting | ({growing} if growing else set()) | ({sending} if sending else set()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            while entered < len(tasks) and tasks[entered].done():
                inst = instances[entered]
                manifest.add(
                    *writer.entry(
                        ManifestEntry(
                            index=entered,
                            sop_instance_uid=inst.sop_instance_uid,
                            series_instance_uid=inst.series_instance_uid,
                            study_instance_uid=inst.study_instance_uid,
                            sop_class_uid=inst.sop_class_uid,
                            transfer_syntax_uid=inst.transfer_syntax_uid,
                            size=inst.size,
                            sha256=tasks[entered].result(),
                            kind="dicom",
                        )
                    )
                )
                entered += 1
        seq, data = writer.close(incomplete=stopped())
        manifest.add(seq, data, final=True)
        await manifest.flush()
    finally:
        manifest.cancel()
        uploader.batches.cancel()
        for task in [*tasks, *([growing] if growing else [])]:
            task.cancel()
        pending: list[asyncio.Future[Any]] = [*tasks, *([growing] if growing else [])]
        if manifest.sending is not None:
            pending.append(manifest.sending)
        await asyncio.gather(*pending, return_exceptions=True)


class _Sending:
    """Carries a plan's decisions out, in order, and tells it what happened."""

    def __init__(
        self,
        client: RelayClient,
        req: PushRequest,
        c: Collection,
        plan: PushPlan,
        on_event: Callable[[PushEvent], None],
        *,
        growing: bool = False,
        stopped: bool = False,
    ) -> None:
        self.client = client
        self.req = req
        self.c = c
        self.plan = plan
        self.on_event = on_event
        self.status: dict[str, Any] = {}  # the relay's last status of the transfer being sent
        self.ready: Ready | None = None
        self.growing = growing  # following a study that is still arriving
        self.stopped = stopped  # staff stopped following it before it was complete
        self.stretched = req.stretched  # taken by the first transfer made
        self.ahead: StretchedSecret | None = None  # its code's secret, stretched

    async def carry_out(self, steps: list[decisions.Decision]) -> None:
        for decision in steps:
            await self._do(decision)

    async def _stretched_ahead(self) -> StretchedSecret | None:
        """The request's code secret stretched ahead, once (a second transfer made in the same
        run draws its own); None without one, or if the stretching failed (the code is then
        stretched when it is locked, which reports the failure)."""
        stretched, self.stretched = self.stretched, None
        if stretched is None:
            return None
        try:
            return await asyncio.wrap_future(stretched)
        except Exception:
            return None

    def _announce_wait(self, delay: float, e: RelayUnreachable) -> None:
        self.on_event(Retrying(delay, e.reason))

    async def _do(self, decision: decisions.Decision) -> None:
        match decision:
            case decisions.Save(record):
                # Off the loop (a file and a folder fsync): the agent's fetches, inbox commits
                # and uploads share it. Awaited, so the next decision still follows the save.
                saved = await asyncio.to_thread(journal.save_from_push, self.req.state_dir, record)
                self.plan.saved(saved)
            case decisions.GiveUp(record, revoke):
                refusal: Exception | None = None
                if revoke:
                    try:
                        await self.client.revoke(record.transfer_id)
                    except (RelayRefused, RelayUnreachable) as e:
                        refusal = e
                await self.carry_out(self.plan.revoke_answered(record.transfer_id, refusal))
            case decisions.Create():
                # Not safe to repeat (the relay may have made it before its answer was lost, and
                # the journal is written only once the answer names it): sent again only while
                # it never reached the relay.
                created = await retry.retrying(
                    lambda: self.client.create_transfer(self.req.recipient, self.req.expires_in),
                    self._announce_wait,
                    unsent_only=True,
                )
                self.ahead = await self._stretched_ahead()
                await self.carry_out(
                    self.plan.transfer_created(time.time(), _new_transfer(created, self.ahead))
                )
            case decisions.Look(record):
                # Reads, safe to ask again: a network blip here is waited out, as an upload's.
                wait = self._announce_wait
                holdings = await self._attempt(
                    record, retry.retrying(lambda: self.client.holdings(record.transfer_id), wait)
                )
                self.status = await self._attempt(
                    record, retry.retrying(lambda: self.client.status(record.transfer_id), wait)
                )
                await self.carry_out(
                    self.plan.transfer_seen(Seen.from_status(self.status), holdings)
                )
            case decisions.InstallLocks(record):
                await self._attempt(record, install_locks(self.client, record, "locks", self.ahead))
            case decisions.AddBreakGlass(record, reason, clinician):
                await self._attempt(record, self._break_glass(record, reason, clinician))
            case decisions.LeavePhoneDocuments(record, glass):
                summary = phone.summary(self.c, self.status, record.expires_at, glass)
                await self._attempt(record, phone.upload(self.client, record, summary))
            case decisions.Show(ready):
                if self.growing:  # counted only once the study is complete
                    ready = replace(ready, series_count=0, instance_count=0)
                self.ready = ready
                self.on_event(ready)
            case decisions.Upload(record, holdings, sender, glass):
                by_path = {str(i.path): i for i in self.c.instances}
                await self._attempt(
                    record,
                    _upload(
                        self.client,
                        [by_path[o.path] for o in record.objects],
                        _summary(self.c, sender, glass, growing=self.growing),
                        record,
                        holdings,
                        self.on_event,
                        self._grow if self.growing else None,
                        lambda: self.stopped,
                        spooled=self.req.source is not None,
                    ),
                )
                await self.carry_out(self.plan.upload_finished(incomplete=self.stopped))
            case decisions.Fail(error, cause):
                raise error from cause

    async def _grow(self) -> list[Instance] | None:
        """The next images of the followed study, once they arrive, journaled under the next
        indices; None once the source says the study is complete."""
        source = cast(StudySource, self.req.source)
        while self.growing:
            arrived = await source.arrivals()
            more = await asyncio.to_thread(_newcomers, self.c, arrived)
            self.stopped = arrived.stopped
            self.growing = not (arrived.complete or arrived.stopped)
            if more:
                self.c.instances.extend(more)
                objects = await asyncio.to_thread(_journal_objects, more)
                await self.carry_out(self.plan.objects_added(objects))
                return more
        return None

    async def _break_glass(
        self, record: journal.TransferJournal, reason: str, clinician: str
    ) -> None:
        """`break_glass`, its answer told at once (`BreakGlassAnswered`)."""
        told = functools.partial(BreakGlassAnswered, record.transfer_id)
        try:
            await break_glass(self.client, record, reason, clinician)
        except AgentError as e:
            self.on_event(told("unknown" if outcome_unknown(e) else "refused", type(e).__name__))
            raise
        except asyncio.CancelledError:  # Ctrl-C, or the agent stopping
            self.on_event(told("unknown", "interrupted"))
            raise
        self.on_event(told("success"))

    async def _attempt(self, record: journal.TransferJournal, step: Awaitable[T]) -> T:
        """`await step`, one step in sending `record`; a refusal (or a file that changed) goes
        to the plan, which decides whether the transfer is given up, and ends the run."""
        try:
            return await step
        except (RelayRefused, errors.FileChanged) as e:
            seen = await self._seen_after_failure(record)
            await self.carry_out(self.plan.send_failed(e, seen))
            raise  # not reached: the plan ends the run

    async def _seen_after_failure(self, record: journal.TransferJournal) -> Seen | NoAnswer | None:
        try:
            return await seen_by_relay(self.client, record.transfer_id)
        except (RelayRefused, RelayUnreachable):
            return NoAnswer()


async def break_glass(
    client: RelayClient, record: journal.TransferJournal, reason: str, clinician: str
) -> None:
    """Authorize `record` by break-glass. The reason and the clinician's name are sealed under
    the data key (they may describe the patient); the relay only records that it was used."""
    sealed = seal_note(
        record.data_key,
        record.transfer_id,
        "break-glass",
        {"reason": reason, "clinician": clinician},
    )
    await client.break_glass(record.transfer_id, sealed)
