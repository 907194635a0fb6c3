"""Push a study: collect and validate, create the transfer, seal every instance and upload it
(resumable), append each instance to the sealed manifest, and close the manifest.

Events go to `on_event` so the command line (or the ER console) can show progress; the code and
QR are ready (`Ready`) as soon as the keys are installed, before the upload finishes, so the
family and the trauma center can act while it runs (cut-through).

Upload requests are retried while the relay is briefly out of reach (`retry`). A transfer that
can never be finished (revoked, expired, refused for good, its files changed) is given up and
revoked (`abandon`), and so is an unfinished one that a push of changed files replaces, so no
code that went out with the patient is left redeemable for a study that will not arrive.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sending_site import abandon, collect, errors, journal, phone
from sending_site.abandon import Abandoned
from sending_site.collect import Collection, Instance
from site_agent import retry
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.keys import lock_with_capability, lock_with_code, new_data_key
from transfer_codes.manifest import (
    MAX_FILE_NAME_LENGTH,
    MAX_OMITTED_NAMES,
    ManifestEntry,
    ManifestWriter,
    StudySummary,
)
from transfer_codes.notes import seal_note
from transfer_codes.phone import authorization_link, new_phone_key
from transfer_codes.sealed import ObjectSealer
from transfer_codes.tokens import new_token
from transfer_codes.wire import Problem, TransferState

SEGMENT_BYTES = 8 * 1024 * 1024  # one PATCH; the unit of resumption
READ_BYTES = 1024 * 1024
PARALLEL_OBJECTS = 4


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
    skip_damaged: bool = False  # send the rest when files are damaged; the manifest says so


@dataclass(frozen=True)
class Ready:
    """Keys are installed: the code, QR and authorization link work from now on."""

    transfer_id: str
    code: str
    capability: str
    authorization_url: str
    expires_at: float
    resumed: bool
    recipient_display_name: str = ""
    sender_display_name: str = ""
    break_glass: bool = False
    replaced: tuple[Abandoned, ...] = ()  # earlier transfers given up: their codes are dead


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
class PushResult:
    ready: Ready
    instances: int
    bytes: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[tuple[Path, str]] = field(default_factory=list)  # sent, but worth knowing


PushEvent = Ready | Progress | Retrying


def omitted_names(c: Collection) -> tuple[str, ...]:
    """The file names (never their folders, which may name the patient) of what was left out,
    as many as the manifest's summary lists, each shortened to fit."""
    limit = MAX_FILE_NAME_LENGTH
    return tuple(
        p.name if len(p.name) <= limit else p.name[: limit - 1] + "…"
        for p, _ in c.omitted[:MAX_OMITTED_NAMES]
    )


def authorization_url(relay: str, token: str, phone_key: str) -> str:
    """The patient's link, `{relay}/authorize#<token>.<phone key>`. Both ride in the fragment,
    which browsers never send; the phone's page posts the token and keeps the key."""
    return authorization_link(relay, token, phone_key)


def _summary(c: Collection, sending_site: str, break_glass: bool) -> StudySummary:
    first = c.instances[0]
    return StudySummary(
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
        omitted=omitted_names(c),
        omitted_count=len(c.omitted),
    )


def _ciphertext(
    f: BinaryIO, data_key: bytes, transfer_id: str, index: int, plain_hash: hashlib._Hash
) -> Iterator[bytes]:
    sealer = ObjectSealer(data_key, transfer_id, index)
    while block := f.read(READ_BYTES):
        plain_hash.update(block)
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


class _Uploader:
    def __init__(
        self,
        client: RelayClient,
        transfer_id: str,
        data_key: bytes,
        on_event: Callable[[PushEvent], None],
        total_bytes: int,
        total_objects: int,
    ) -> None:
        self.client = client
        self.transfer_id = transfer_id
        self.data_key = data_key
        self.on_event = on_event
        self.bytes_done = 0
        self.objects_done = 0
        self.total_bytes = total_bytes
        self.total_objects = total_objects
        self.limit = asyncio.Semaphore(PARALLEL_OBJECTS)

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
                raise errors.UploadInterrupted(
                    f"The relay holds less of image {index} than it had acknowledged. Run the "
                    "same command again: it resumes from what the relay holds."
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

    async def object(self, index: int, instance: Instance, held: int, complete: bool) -> str:
        """Seal and upload one instance from the relay's offset `held`; returns the plaintext
        SHA-256 (the manifest entry's)."""
        async with self.limit:
            plain_hash = hashlib.sha256()
            cipher_hash = hashlib.sha256()
            position = 0
            with instance.path.open("rb") as f:
                segments = _segments(
                    _ciphertext(f, self.data_key, self.transfer_id, index, plain_hash)
                )
                segment = await asyncio.to_thread(next, segments, None)
                while segment is not None:
                    # Read one ahead, so the last PATCH can also complete the object.
                    following = await asyncio.to_thread(next, segments, None)
                    cipher_hash.update(segment)
                    end = position + len(segment)
                    if not complete and end > held:
                        digest = cipher_hash.hexdigest() if following is None else None
                        held, complete = await self._append(index, position, segment, held, digest)
                    position = end
                    segment = following
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
            self.bytes_done += instance.size
            self.objects_done += 1
            self._progress()
            return plain_hash.hexdigest()


async def _start(
    client: RelayClient, req: PushRequest, c: Collection
) -> tuple[journal.TransferJournal, bool, list[Abandoned]]:
    """Find an unfinished transfer of the same files to resume, or create a new one. A
    matching transfer the relay can no longer finish is given up first (and listed)."""
    objects = [
        journal.JournalObject(i, str(inst.path), inst.size, inst.path.stat().st_mtime_ns)
        for i, inst in enumerate(c.instances)
    ]
    fingerprint = [(o.path, o.size, o.mtime_ns) for o in objects]
    relay = req.relay.rstrip("/")
    patient = abandon.patient_digest(c)
    given_up: list[Abandoned] = []
    for old in journal.unfinished(req.state_dir):
        if (old.relay, old.recipient, old.fingerprint()) != (relay, req.recipient, fingerprint):
            continue
        why = await abandon.why_not_resumable(client, old)
        if not why:
            if not old.patient:  # a journal from before patients were recorded
                old.patient = patient
                journal.save(req.state_dir, old)
            return old, True, given_up
        # Only a locked transfer is still alive on the relay: revoked, a re-issue cannot bring
        # a second code for the patient back to life.
        revoke = why == abandon.LOCKED
        given_up.append(await abandon.give_up(client, req.state_dir, old, why, revoke=revoke))
    created = await client.create_transfer(req.recipient, req.expires_in)
    transfer_id = str(created["transfer_id"])
    code = RedemptionCode.generate(int(created["locator"]))
    record = journal.TransferJournal(
        transfer_id=transfer_id,
        relay=relay,
        recipient=req.recipient,
        data_key=new_data_key(),
        locator=int(created["locator"]),
        code=code.compact(),
        capability=Capability.generate(transfer_id).to_text(),
        authorization_token=new_token(),
        expires_at=float(created["expires_at"]),
        objects=objects,
        phone_key=new_phone_key(),
        patient=patient,
    )
    journal.save(req.state_dir, record)
    return record, False, given_up


async def install_locks(client: RelayClient, record: journal.TransferJournal, path: str) -> None:
    code = RedemptionCode.parse(record.code)
    capability = Capability.parse(record.capability)
    locks: dict[str, object] = {
        "code": lock_with_code(record.data_key, record.transfer_id, code).to_json(),
        "capability": lock_with_capability(
            record.data_key, record.transfer_id, capability
        ).to_json(),
    }
    if path == "locks":
        await client.install_locks(record.transfer_id, locks, record.authorization_token)
    else:
        await client.reissue(record.transfer_id, locks)


async def break_glass(
    client: RelayClient, record: journal.TransferJournal, reason: str, clinician: str
) -> None:
    sealed = seal_note(
        record.data_key,
        record.transfer_id,
        "break-glass",
        {"reason": reason, "clinician": clinician},
    )
    await client.break_glass(record.transfer_id, sealed)


async def push(
    req: PushRequest, on_event: Callable[[PushEvent], None], collection: Collection | None = None
) -> PushResult:
    """Send a study (`collection`, when the caller already collected `req.paths` to show it);
    safe to run again after any interruption (it resumes).

    Raises `TransferWithdrawn` when the transfer can never be finished (it is then revoked),
    `RelayUnreachable` when the relay stays out of reach (run again: it resumes)."""
    c = collection
    if c is None:
        c = await asyncio.to_thread(
            functools.partial(collect.collect, req.paths, skip_damaged=req.skip_damaged)
        )
    async with RelayClient(req.relay, req.credential) as client:
        await client.health()
        record, resumed, given_up = await _start(client, req, c)
        try:
            ready = await _send(client, req, c, record, resumed, given_up, on_event)
        except (RelayRefused, errors.FileChanged) as e:
            why = await abandon.failure_reason(client, record, e)
            if why is None:
                raise
            try:
                gone = await abandon.give_up(client, req.state_dir, record, why)
            except (RelayRefused, RelayUnreachable):
                raise e from None  # not withdrawn yet: the next run finds it and tries again
            if gone.redeemed:
                raise errors.TransferWithdrawn(
                    f"{_sentence(e)} Transfer {record.transfer_id} cannot be finished, and the "
                    "trauma center has already redeemed its code: call them to say the images "
                    "will come as a new transfer, fix the problem and send the study again."
                ) from e
            raise errors.TransferWithdrawn(
                f"{_sentence(e)} Transfer {record.transfer_id} could not be finished, so it was "
                f"withdrawn: its code {gone.code} no longer works. Fix the problem and send the "
                "study again; it goes as a new transfer with a new code."
            ) from e
    return PushResult(ready, len(c.instances), sum(i.size for i in c.instances), c.skipped, c.notes)


def _sentence(e: Exception) -> str:
    text = str(e).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


async def _send(
    client: RelayClient,
    req: PushRequest,
    c: Collection,
    record: journal.TransferJournal,
    resumed: bool,
    given_up: list[Abandoned],
    on_event: Callable[[PushEvent], None],
) -> Ready:
    if not record.phone_key:  # a journal from before the phone pages
        record.phone_key = new_phone_key()
        journal.save(req.state_dir, record)
    holdings = await client.holdings(record.transfer_id)
    status = await client.status(record.transfer_id)
    if status["state"] == TransferState.CREATED:
        await install_locks(client, record, "locks")
    already_consented = status["authorized_by"] in ("patient", "family")
    if req.break_glass_reason and not status["break_glass"] and not already_consented:
        # The relay refuses break-glass once the patient or family has authorized: not needed.
        await break_glass(client, record, req.break_glass_reason, req.clinician or "")
        glass = True
    else:
        glass = bool(status["break_glass"])
    await phone.upload(client, record, phone.summary(c, status, record.expires_at, glass))
    # Last before the new code is shown, so a run that stops earlier leaves them for the next.
    for old in abandon.superseded(req.state_dir, record):
        try:
            given_up.append(await abandon.give_up(client, req.state_dir, old, abandon.REPLACED))
        except RelayRefused as e:  # about the old transfer: it must not doom this one
            raise errors.SendingError(
                f"Transfer {old.transfer_id}, which this one replaces, could not be withdrawn "
                f"({e}). Run the same command again."
            ) from e
    ready = Ready(
        transfer_id=record.transfer_id,
        code=RedemptionCode.parse(record.code).grouped(),
        capability=record.capability,
        authorization_url=authorization_url(
            req.relay, record.authorization_token, record.phone_key
        ),
        expires_at=record.expires_at,
        resumed=resumed,
        recipient_display_name=str(status["recipient"]["display_name"] or req.recipient),
        sender_display_name=str(status["sender"]["display_name"]),
        break_glass=glass,
        replaced=tuple(given_up),
    )
    on_event(ready)

    writer = ManifestWriter(record.data_key, record.transfer_id)
    records = [writer.summary(_summary(c, status["sender"]["name"], glass))]
    uploader = _Uploader(
        client,
        record.transfer_id,
        record.data_key,
        on_event,
        sum(i.size for i in c.instances),
        len(c.instances),
    )
    sent = holdings.manifest_records
    expected_last = len(c.instances) + 1

    async def put_records() -> None:
        while records:
            seq, data = records.pop(0)
            if seq >= sent:
                final = seq == expected_last
                # An identical record again is accepted, so a lost answer is safe to repeat.
                await retry.retrying(
                    functools.partial(
                        client.put_manifest_record, record.transfer_id, seq, data, final=final
                    ),
                    uploader.announce_wait,
                )

    await put_records()
    tasks = [
        asyncio.create_task(
            uploader.object(i, inst, holdings.offsets.get(i, 0), i in holdings.complete)
        )
        for i, inst in enumerate(c.instances)
    ]
    try:
        for i, (inst, task) in enumerate(zip(c.instances, tasks, strict=True)):
            sha256 = await task
            records.append(
                writer.entry(
                    ManifestEntry(
                        index=i,
                        sop_instance_uid=inst.sop_instance_uid,
                        series_instance_uid=inst.series_instance_uid,
                        study_instance_uid=inst.study_instance_uid,
                        sop_class_uid=inst.sop_class_uid,
                        transfer_syntax_uid=inst.transfer_syntax_uid,
                        size=inst.size,
                        sha256=sha256,
                        kind="dicom",
                    )
                )
            )
            await put_records()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    records.append(writer.close())
    await put_records()
    record.done = True
    journal.save(req.state_dir, record)
    return ready
