"""Deliver staged instances by C-STORE into a PACS (pynetdicom); `folder_copy` writes files.

Files are sent as their stored bytes (pynetdicom's chunked-from-file mode), so the PACS gets
exactly the dataset the sender had, in its original transfer syntax, whenever it accepts that
syntax. An image in a compressed or deflated syntax the PACS refuses is decompressed to
Explicit (or Implicit) VR Little Endian, if the PACS takes its SOP class so (`formats` chooses,
`transcode` converts); the delivery says how many were. All or nothing as far as formats go:
if any image can go neither way, nothing is stored. Images go over several associations at
once (`associations`), each reused for many images; `stow` is the DICOMweb way in.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.uid import DeflatedExplicitVRLittleEndian

from receiving_site import errors, formats, transcode
from receiving_site.reconcile import Coercion
from receiving_site.staged_header import StagedHeader
from receiving_site.staging import StagedObject
from site_agent.association import idle, in_use, pause_reactor

DEFAULT_CALLING_AE_TITLE = "TRAUMARELAY"
DEFAULT_ASSOCIATIONS = 4  # as `PacsSettings.associations`
MAX_ASSOCIATIONS = 32  # a PACS limits how many associations one caller may open at once
VERIFICATION = "1.2.840.10008.1.1"  # the Verification SOP Class (C-ECHO), PS3.4 A.4
SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}
# Seconds an association waits for its next image before its DUL polls slowly (`idle`): images
# that keep coming are sent without the DUL's wake-up delay.
BRISK_SECONDS = 0.1
# Headers kept with the images waiting to be sent (`StoreAsVerified.put`), about 20 KB each;
# an image put while as many wait has its header read again when it is filed.
KEPT_HEADERS = 64
# Verifies an image before it is stored, returning its header (`staging.check_header`).
Check = Callable[[StagedObject], StagedHeader]
# PS3.5 6.2 (AE): up to 16 characters of the default repertoire, no backslash, no controls.
_AE_TITLE = re.compile(r"[^\\\x00-\x1f\x7f]{1,16}")


@dataclass(frozen=True)
class PacsAddress:
    ae_title: str
    host: str
    port: int
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE

    def __post_init__(self) -> None:
        """Raises `BadPacsAddress` for an AE title DICOM does not allow or a port out of range,
        before any association (or the code) is tried."""
        for option, title in (("--pacs", self.ae_title), ("--calling-aet", self.calling_ae_title)):
            if not _AE_TITLE.fullmatch(title) or not title.strip():
                raise errors.BadPacsAddress(
                    f"{option}: {title!r} is not an AE title (at most 16 characters, no "
                    "backslash), e.g. TRAUMARELAY. Nothing was done."
                )
        if not 1 <= self.port <= 65535:
            raise errors.BadPacsAddress(
                f"--pacs: {self.port} is not a port (1 to 65535), e.g. PACS@10.0.0.5:104. "
                "Nothing was done."
            )

    @classmethod
    def parse(cls, text: str) -> PacsAddress:
        match = re.fullmatch(r"([^@]{1,16})@([^:]+|\[[^\]]+\]):(\d{1,5})", text.strip())
        if not match:
            raise errors.PacsUnreachable(
                f"{text!r} is not a PACS address; write it as AET@HOST:PORT, "
                "e.g. PACS@10.0.0.5:104."
            )
        return cls(match.group(1), match.group(2).strip("[]"), int(match.group(3)))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def _unreachable(pacs: PacsAddress, assoc: Any) -> errors.PacsUnreachable:
    why = "refused the association" if assoc.is_rejected else "could not be reached"
    return errors.PacsUnreachable(
        f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} {why}. Check its AE title, "
        "address and port, and that it accepts this system; nothing was stored."
    )


def _application_entity(calling_ae_title: str) -> Any:
    """A pynetdicom `AE`: imported here, so that a redeem into a folder (or a site agent that
    only reads the address) starts without loading the network half of DICOM."""
    from pynetdicom import AE, _config

    # Send each file's own bytes without decoding or re-encoding them.
    _config.STORE_SEND_CHUNKED_DATASET = True
    # No per-message log lines: pynetdicom's standard handlers format several for every C-STORE
    # and its answer (the agent logs at INFO: two lines per image). Refused or aborted
    # associations are still logged by pynetdicom itself, and told to staff by ours.
    _config.LOG_HANDLER_LEVEL = "none"
    return AE(ae_title=calling_ae_title)


def check_pacs(pacs: PacsAddress) -> None:
    """Ask the PACS for a verification (C-ECHO) over an association of its own, so that a
    wrong address or a PACS that does not accept us is found before the code is spent.

    Raises `PacsUnreachable`."""
    ae = _application_entity(pacs.calling_ae_title)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        raise _unreachable(pacs, assoc)
    with in_use(assoc):
        pause_reactor(assoc)
        status = assoc.send_c_echo()
    if "Status" not in status or int(status.Status) != 0x0000:
        raise errors.PacsUnreachable(
            f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} accepted the connection but "
            "did not answer a verification (C-ECHO). Check that it accepts this system; "
            "nothing was stored."
        )


@dataclass(frozen=True)
class PacsDelivery:
    """What `store_to_pacs` did: `stored` images, of which `decompressed` counts (by the
    transfer syntax UID they were sent in) those decompressed because the PACS refused it."""

    stored: int
    decompressed: Mapping[str, int] = field(default_factory=dict)

    @property
    def decompressed_images(self) -> int:
        return sum(self.decompressed.values())

    @property
    def note(self) -> str:
        """For staff, e.g. "12 of the 240 images were decompressed because the PACS does not
        accept JPEG 2000 Image Compression."; empty when nothing was decompressed."""
        return formats.decompressed_note(self.decompressed, self.stored)


@contextmanager
def _association(
    pacs: PacsAddress, contexts: Sequence[tuple[str, Sequence[str]]], refusal: str
) -> Iterator[Any]:
    """An established association proposing `contexts`, released on exit. Raises
    `PacsUnreachable`, or `PacsRefused(refusal)` when the PACS accepts none of the contexts."""
    from pynetdicom.presentation import build_context

    ae = _application_entity(pacs.calling_ae_title)
    ae.requested_contexts = [build_context(sop, list(syntaxes)) for sop, syntaxes in contexts]
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        if assoc.rejected_contexts and not assoc.is_rejected:
            # pynetdicom aborts when the PACS accepts the association but none of its contexts.
            raise errors.PacsRefused(refusal)
        raise _unreachable(pacs, assoc)
    with in_use(assoc):
        yield assoc


def _accepted(assoc: Any) -> set[formats.Pair]:
    return {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}


def store_to_pacs(
    staged: list[StagedObject],
    pacs: PacsAddress,
    coercion: Coercion | None = None,
    on_stored: Callable[[int, int], None] | None = None,
    associations: int = 1,
) -> PacsDelivery:
    """C-STORE every instance; returns how many were stored, and which were decompressed.
    `on_stored(done, total)` is called after each image the PACS accepted (from the sending
    threads, one call at a time, `done` increasing).
    With `coercion`, every instance is filed under the local patient (`reconcile`), through a
    copy like a decompressed one. The images go over up to `associations` associations at
    once, each reused for many images; the first failure stops them all.

    After negotiation and before the first C-STORE every instance is routed (see `formats`):
    in its own format if the PACS accepts it, else decompressed (see `transcode`) when the PACS
    takes its SOP class uncompressed. If any instance can go neither way, or does not decode,
    nothing is sent and `PacsRefused` names the formats. Decoding can take minutes, longer than
    a PACS keeps an idle association open (Orthanc: 30 s), so the copies are made between the
    association that only negotiates and those (up to `associations`) that send. The copies
    are removed on return. Raises `PacsUnreachable` if an association fails, `PacsRefused` if
    the PACS refuses an instance during the sending (those stored before it stay stored:
    C-STORE has no transaction), and `OSError` if a copy cannot be written."""
    offer = formats.offer(staged)
    with _association(pacs, offer.contexts, offer.refusal(staged, len(staged))) as assoc:
        targets = offer.routes(staged, _accepted(assoc))
        if not targets and coercion is None and associations <= 1:
            return PacsDelivery(_send(assoc, staged, {}, on_stored))
    converting = [s for s in staged if s.entry.index in targets]
    copies: dict[int, Path] = {}
    try:
        for item in staged if coercion else converting:
            target = targets.get(item.entry.index)
            copies[item.entry.index] = _rewritten(item, target, coercion, converting, len(staged))
        wire = sorted(
            {
                (s.entry.sop_class_uid, targets.get(s.entry.index, s.entry.transfer_syntax_uid))
                for s in staged
            }
        )
        sending = Sending(copies, on_stored)
        for item in staged:
            sending.put(item)
        sending.close()
        workers = max(1, min(associations, MAX_ASSOCIATIONS, len(staged)))
        with ThreadPoolExecutor(workers, thread_name_prefix="c-store") as pool:
            for _ in range(workers):
                pool.submit(_send_over_one, pacs, wire, sending)
        stored = sending.result()
    finally:
        for path in copies.values():
            path.unlink(missing_ok=True)
    decompressed = Counter(s.entry.transfer_syntax_uid for s in converting)
    return PacsDelivery(stored, dict(decompressed))


def _rewritten(
    item: StagedObject,
    target: str | None,
    coercion: Coercion | None,
    converting: list[StagedObject],
    total: int,
    header: StagedHeader | None = None,
) -> Path:
    """`item`'s copy, decompressed into `target` and coerced (`transcode.rewrite`, from
    `header` if given); raises `PacsRefused` saying why when it does not decode. `converting`
    (of `total` images) are those the PACS takes only decompressed, for the message."""
    try:
        return transcode.rewrite(item, target, coercion=coercion, header=header)
    except errors.Undecodable as e:
        if target is None:  # only coerced, and that failed
            raise errors.PacsRefused(
                f"Image {item.entry.index + 1} could not be filed under the local "
                f"patient record ({e.message}). Nothing was stored."
            ) from e
        raise errors.PacsRefused(formats.undecodable(converting, total, item, e.message)) from e


class Storing:
    """What the stores that take images as they are verified share (`StoreAsVerified`, and
    `stow.StowAsVerified`): the queue their threads take images from, and what they did."""

    sending: Sending
    _coercion: Coercion | None  # without one, an image is sent as staged: no header needed

    def put(
        self, item: StagedObject, header: StagedHeader | None = None, *, check: Check | None = None
    ) -> None:
        """Store `item` after those put before it: verified, or with `check` to verify it.
        `header`: its header as the identity check read it, which filing under the local
        record then uses instead of reading it again (kept for the first `KEPT_HEADERS`
        images waiting). `check`: the thread that takes the image calls `check(item)` before
        anything else (one hand-off fewer per image than checking it first); if that raises,
        the image is not stored and the storing stops with that failure (as with any other);
        else the image is filed from the header it returns."""
        self.sending.put(item, header if self._coercion is not None else None, check)

    def close(self) -> None:
        """No image will be put any more."""
        self.sending.close()

    def stop(self) -> None:
        """Store nothing more (the images being sent finish)."""
        self.sending.stop()

    @property
    def stored(self) -> int:
        return self.sending.stored


class StoreAsVerified(Storing):
    """C-STORE images while the study is still arriving: `put` each verified image, `close`
    after the last (or `stop` to store nothing more), then `finish` for the delivery.

    Up to `associations` associations (opened at their first image) take the images in the
    order they were put, each kept open for many. An association proposes the formats
    (`formats.offer`) of the images put so far; an image in a format it did not propose opens
    a new one that does (also when the PACS closed an idle one). An image whose format the
    PACS refuses is decompressed on its way, if the PACS takes its SOP class so; with
    `coercion`, each is filed under the local patient. Unlike `store_to_pacs`, formats are not
    known in advance, so a refused one is found at its first image, after those before it
    were stored. `on_stored(done, put_so_far)` as for `store_to_pacs`."""

    def __init__(
        self,
        pacs: PacsAddress,
        coercion: Coercion | None = None,
        on_stored: Callable[[int, int], None] | None = None,
        associations: int = 1,
    ) -> None:
        self.sending = Sending({}, on_stored)
        self._coercion = coercion
        self._formats: dict[formats.Pair, StagedObject] = {}
        self._lock = threading.Lock()
        workers = max(1, min(associations, MAX_ASSOCIATIONS))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="c-store")
        for _ in range(workers):
            self._pool.submit(_store_as_verified, pacs, self, coercion)

    def put(
        self, item: StagedObject, header: StagedHeader | None = None, *, check: Check | None = None
    ) -> None:
        """`Storing.put`, its format remembered for the associations' offers."""
        with self._lock:
            self._formats.setdefault(_pair(item), item)
        super().put(item, header, check=check)

    def offer(self) -> formats.Offer:
        """The contexts for the formats of the images put so far."""
        with self._lock:
            return formats.offer(list(self._formats.values()))

    def finish(self) -> PacsDelivery:
        """Wait for the associations to end (after `close` or `stop`); returns what was stored,
        or raises the first failure (`PacsRefused`, `PacsUnreachable`, `OSError`). Blocks."""
        self._pool.shutdown(wait=True)
        return PacsDelivery(self.sending.result(), dict(self.sending.decompressed))


def _pair(item: StagedObject) -> formats.Pair:
    return (item.entry.sop_class_uid, item.entry.transfer_syntax_uid)


def _store_as_verified(
    pacs: PacsAddress, stream: StoreAsVerified, coercion: Coercion | None
) -> None:
    """One association of `StoreAsVerified`, reopened for a format it did not propose; every
    failure goes into its `sending` (never raised: it runs in a pool)."""
    sending = stream.sending
    held = ExitStack()
    try:
        assoc: Any = None
        offer = formats.offer([])

        def waiting() -> AbstractContextManager[None]:
            return nullcontext() if assoc is None else idle(assoc)

        while (item := sending.next(waiting)) is not None:
            header = sending.header(item)  # checked here, if it was put to be
            proposed = {(sop, syntax) for sop, syntaxes in offer.contexts for syntax in syntaxes}
            if assoc is None or not assoc.is_established or _pair(item) not in proposed:
                held.close()
                held = ExitStack()
                offer = stream.offer()
                refusal = offer.refusal([item], 1)
                assoc = held.enter_context(_association(pacs, offer.contexts, refusal))
            target = offer.routes([item], _accepted(assoc)).get(item.entry.index)
            copies: dict[int, Path] = {}
            try:
                if target is not None or coercion is not None:
                    copies[item.entry.index] = _rewritten(item, target, coercion, [item], 1, header)
                _store_one(assoc, item, copies, sending.stored)
            finally:
                for path in copies.values():
                    path.unlink(missing_ok=True)
            sending.done(None if target is None else item.entry.transfer_syntax_uid)
    except BaseException as e:  # handed to the caller through `sending`
        sending.failed(e)
    finally:
        held.close()


def _no_longer_accepted(pairs: list[formats.Pair]) -> str:
    return (
        f"The PACS no longer accepts {'; '.join(formats.name(pair) for pair in pairs)}, which "
        "it accepted a moment before. Nothing was stored; check the PACS configuration, then "
        "run again."
    )


class Sending:
    """The images several associations (or STOW-RS posts, `stow.StowAsVerified`) share out,
    one at a time or a batch at a time (`more`), and what they did: a queue
    that `put` fills (all at once for a whole study, or as each image is verified) and `close`
    ends. The first failure, or `stop`, stops every association at its next image; `result`
    raises the failure."""

    def __init__(
        self,
        copies: Mapping[int, Path],
        on_stored: Callable[[int, int], None] | None,
    ) -> None:
        self.copies = copies
        self._waiting: deque[StagedObject] = deque()
        self._headers: dict[int, StagedHeader] = {}  # by image index, for the images waiting
        self._checks: dict[int, Check] = {}  # likewise, for those not verified yet
        self._total = 0
        self._on_stored = on_stored
        self._ready = threading.Condition()
        self._closed = False
        self._stopped = False
        self.stored = 0
        self.decompressed: Counter[str] = Counter()
        self.failure: BaseException | None = None

    def put(
        self, item: StagedObject, header: StagedHeader | None = None, check: Check | None = None
    ) -> None:
        with self._ready:
            self._waiting.append(item)
            self._total += 1
            if header is not None and len(self._headers) < KEPT_HEADERS:
                self._headers[item.entry.index] = header
            if check is not None:
                self._checks[item.entry.index] = check
            self._ready.notify()

    def header(self, item: StagedObject) -> StagedHeader | None:
        """`item`'s header (once: it is then forgotten): read by its check, now, if it was put
        with one (raising the check's failure), else as `put` kept it, else None."""
        with self._ready:
            check = self._checks.pop(item.entry.index, None)
            header = self._headers.pop(item.entry.index, None)
        return header if check is None else check(item)

    @property
    def total(self) -> int:
        """How many images were put so far."""
        with self._ready:
            return self._total

    def more(self, most: int, room: int) -> list[StagedObject]:
        """Up to `most` more images already waiting (never waits), in order, while their sizes
        fit in `room` bytes: the rest of a batch that `next` began."""
        taken: list[StagedObject] = []
        with self._ready:
            while self._waiting and len(taken) < most and not (self.failure or self._stopped):
                if self._waiting[0].entry.size > room:
                    break
                room -= self._waiting[0].entry.size
                taken.append(self._waiting.popleft())
        return taken

    def close(self) -> None:
        """No image will be put any more: each association ends once the queue is empty."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def stop(self) -> None:
        """Store nothing more: the images still queued stay unsent."""
        with self._ready:
            self._stopped = True
            self._ready.notify_all()

    def next(
        self, waiting: Callable[[], AbstractContextManager[None]] = nullcontext
    ) -> StagedObject | None:
        """The next image to send (waiting for one while the queue is open; inside `waiting()`
        once none came for `BRISK_SECONDS`), or None when all are taken, one failed, or the
        sending was stopped."""
        with self._ready, ExitStack() as idling:
            waited = quiet = False
            while True:
                if self.failure is not None or self._stopped:
                    return None
                if self._waiting:
                    return self._waiting.popleft()
                if self._closed:
                    return None
                if not waited:
                    waited = True
                    self._ready.wait(BRISK_SECONDS)
                    continue
                if not quiet:
                    idling.enter_context(waiting())
                    quiet = True
                self._ready.wait()

    def done(self, decompressed_from: str | None = None, count: int = 1) -> None:
        """`count` more images were stored (`decompressed_from` that syntax, if any)."""
        if count <= 0:
            return
        with self._ready:
            self.stored += count
            if decompressed_from is not None:
                self.decompressed[decompressed_from] += count
            if self._on_stored is not None:
                self._on_stored(self.stored, self._total)

    def failed(self, e: BaseException) -> None:
        with self._ready:
            self.failure = self.failure or e
            self._ready.notify_all()

    def result(self) -> int:
        if self.failure is not None:
            raise self.failure
        return self.stored


def _send_over_one(pacs: PacsAddress, wire: list[formats.Pair], sending: Sending) -> None:
    """One association of `store_to_pacs`: C-STORE images from `sending` until none is left;
    every failure goes into `sending` (never raised: it runs in a pool)."""
    try:
        contexts = [(sop, (syntax,)) for sop, syntax in wire]
        with _association(pacs, contexts, _no_longer_accepted(wire)) as assoc:
            lost = set(wire) - _accepted(assoc)
            if lost:
                raise errors.PacsRefused(_no_longer_accepted(sorted(lost)))
            while (item := sending.next()) is not None:
                _store_one(assoc, item, sending.copies, sending.stored)
                sending.done()
    except BaseException as e:  # handed to the caller through `sending`
        sending.failed(e)


def _send(
    assoc: Any,
    staged: list[StagedObject],
    copies: Mapping[int, Path],
    on_stored: Callable[[int, int], None] | None = None,
) -> int:
    """C-STORE each instance (its uncompressed copy where there is one); returns how many were
    stored, or raises `PacsRefused` at the first that is not."""
    stored = 0
    for item in staged:
        _store_one(assoc, item, copies, stored)
        stored += 1
        if on_stored is not None:
            on_stored(stored, len(staged))
    return stored


def _store_one(assoc: Any, item: StagedObject, copies: Mapping[int, Path], stored: int) -> None:
    """C-STORE `item` (its uncompressed copy where there is one); raises `PacsRefused` unless
    the PACS stored it. `stored` (images stored so far) is for the message."""
    pause_reactor(assoc)
    status = assoc.send_c_store(copies.get(item.entry.index) or _wire_file(item))
    if "Status" not in status:  # no answer: aborted, or the DIMSE wait ran out
        raise errors.PacsRefused(
            f"The PACS stopped answering while image {item.entry.index + 1} was sent. "
            f"{stored} images were stored; check the PACS log, then run again."
        )
    code = int(status.Status)
    if code not in SUCCESS_OR_WARNING:
        raise errors.PacsRefused(
            f"The PACS refused image {item.entry.index + 1} (status 0x{code & 0xFFFF:04X})."
            f" {stored} images were stored."
        )


def _wire_file(item: StagedObject) -> Path:
    """The file to C-STORE for `item`: the staged file, except that a deflated data set of odd
    length gets the single trailing NUL byte PS3.5 A.5 requires (DCMTK-based PACS such as
    Orthanc abort on an odd fragment). The file meta is even-length, so the file's parity is
    the data set's."""
    path = item.path
    deflated = item.entry.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    if not deflated or path.stat().st_size % 2 == 0:
        return path
    padded = path.with_suffix(".even")
    shutil.copyfile(path, padded)
    with padded.open("ab") as f:
        f.write(b"\x00")
    return padded
