"""Deliver staged instances over DICOMweb STOW-RS (PS3.18 10.5), the other way into a PACS.

Instances go in batches, each one POST of `multipart/related; type="application/dicom"` to
`{base}/studies`, each part a whole Part 10 file: its stored bytes, or its copy filed under the
local patient (`transcode.rewrite` with the same `reconcile.Coercion` C-STORE uses, so identity
reconciliation is one path). Nothing is decompressed: STOW-RS carries any transfer syntax, and a
server that refuses one says so per instance.

Retries are idempotent: a batch whose answer was lost (no connection, a timeout, a 5xx) is
posted again as it was, same files, same UIDs. A server keeps one instance per SOP Instance
UID, so an instance it already stored is stored again or reported as a duplicate (0x0111),
which counts as stored; a retry never makes a second copy.

The answer (PS3.18 10.5.3, Store Instances Response Module) lists stored instances in
ReferencedSOPSequence and refused ones in FailedSOPSequence with a Failure Reason. Every
instance of a batch must be in one of them; refused or unconfirmed ones are reported as plain
sentences, one per instance, naming the image by its position in the transfer. Instances
stored before a failure stay stored (STOW-RS has no transaction across batches); running again
sends them again, harmlessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from receiving_site import errors, transcode
from receiving_site.pacs import PacsDelivery, Sending, Storing
from receiving_site.reconcile import Coercion
from receiving_site.settings import StowSettings
from receiving_site.staged_header import StagedHeader
from receiving_site.staging import StagedObject
from site_agent.credential import authorization_header

BATCH_IMAGES = 50  # instances per POST
# At most this many bytes of files per POST (one bigger file goes alone): a batch is held in
# memory while posted, `POSTS_AT_ONCE` at once when storing as the images arrive.
BATCH_BYTES = 8 * 2**20
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds before each new try of a batch whose answer is lost
TIMEOUT = aiohttp.ClientTimeout(total=600, connect=30)  # seconds, per POST
CHECK_TIMEOUT = aiohttp.ClientTimeout(total=30)  # seconds, for the check before the code is spent
_DETAIL_CHARS = 200  # of a server's answer, in a message staff read
_MAX_SENTENCES = 10  # refused instances named one by one; the rest are counted
POSTS_AT_ONCE = 3  # `StowAsVerified`'s posts in flight: one is built while others are answered
# Of those, how many may each hold an image bigger than `BATCH_BYTES` (it goes alone, read whole):
# a third post adds at most one batch of `BATCH_BYTES`, never a third such image, to memory.
LARGE_AT_ONCE = 2

# DICOM JSON tags (PS3.18 F.2) of the Store Instances Response Module (PS3.18 10.5.3.2).
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
DUPLICATE = 0x0111  # "Duplicate SOP Instance" (PS3.7 C.4.2.1.5): already stored, so stored

# PS3.18 Table 10.5.3-2 and PS3.4 B.2.3: failure reasons, in words.
_REASONS = {
    0x0110: "the server could not process it",
    0x0122: "the server does not store this kind of image (SOP class)",
    0x0124: "the server does not allow this system to store it",
    0xA700: "the server is out of space",
    0xA900: "its contents do not match its kind of image",
    0xC000: "the server could not read it",
    0xC122: "the server does not accept its format (transfer syntax)",
}


@dataclass(frozen=True)
class StowDestination:
    """A DICOMweb service that takes STOW-RS: its base URL (e.g. https://pacs/dicom-web) and
    the file holding its credential, if it needs one (a bearer token, or USER:PASSWORD for
    basic authentication; read when needed, never put in a URL or a log)."""

    url: str
    credential_file: Path | None = None

    def __post_init__(self) -> None:
        """Raises `BadStowAddress` for anything but an http(s) URL without credentials, query
        or fragment, before the code is spent."""
        parts = urlsplit(self.url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
        ):
            raise errors.BadStowAddress()

    @property
    def studies_url(self) -> str:
        return self.url.rstrip("/") + "/studies"

    def __str__(self) -> str:
        return self.url

    def headers(self) -> dict[str, str]:
        """The Authorization header for the credential file, if any. Raises the credential
        errors of `site_agent.credential` if the file cannot be read."""
        return authorization_header(self.credential_file)


def from_settings(settings: StowSettings) -> StowDestination | None:
    """The destination `[stow]` in the receiving agent's settings names; None without a URL."""
    return StowDestination(settings.url, settings.credential_file) if settings.url else None


def _unreachable(dest: StowDestination, why: str) -> errors.StowUnreachable:
    return errors.StowUnreachable(
        f"The DICOMweb server at {dest.url} {why}. Check the --stow address, the network and "
        "the credential file; nothing was stored."
    )


def _refused_access(dest: StowDestination, status: int) -> errors.StowUnreachable | None:
    if status in (401, 403):
        given = "the credential in the credential file" if dest.credential_file else "no credential"
        return _unreachable(dest, f"refused {given} (HTTP {status})")
    if status == 404:
        return _unreachable(dest, "has no DICOMweb studies service there (HTTP 404)")
    return None


async def check_stow(dest: StowDestination) -> None:
    """Ask the server for the studies of a UID that cannot exist (QIDO-RS), with the
    credential, so that a wrong address or credential is found before the code is spent.
    Raises `StowUnreachable`."""
    params = {"StudyInstanceUID": f"2.25.{secrets.randbits(120)}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=CHECK_TIMEOUT) as session,
            session.get(dest.studies_url, params=params, headers=dest.headers()) as response,
        ):
            refused = _refused_access(dest, response.status)
            if refused is not None:
                raise refused
            if response.status >= 500:
                raise _unreachable(dest, f"answered with an error (HTTP {response.status})")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise _unreachable(dest, "could not be reached") from e


def batches(staged: list[StagedObject]) -> Iterator[list[StagedObject]]:
    """`staged` in order, cut into batches of at most `BATCH_IMAGES` images and `BATCH_BYTES`
    bytes (a bigger image goes alone)."""
    batch: list[StagedObject] = []
    size = 0
    for item in staged:
        if batch and (len(batch) == BATCH_IMAGES or size + item.entry.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.entry.size
    if batch:
        yield batch


def multipart(files: list[Path]) -> tuple[bytearray, str]:
    """The request body for `files` and its Content-Type (PS3.18 8.6.1.2). The body is one
    buffer of its final size, each file read straight into it: a batch is held once, not
    once in pieces and again joined."""
    boundary = f"trauma-relay-{secrets.token_hex(16)}"
    part = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
    end = f"--{boundary}--\r\n".encode("ascii")
    opened = [path.open("rb") for path in files]
    try:
        sizes = [os.fstat(f.fileno()).st_size for f in opened]
        body = bytearray(sum(sizes) + len(files) * (len(part) + 2) + len(end))
        view = memoryview(body)
        at = 0
        for f, size in zip(opened, sizes, strict=True):
            view[at : at + len(part)] = part
            at += len(part)
            _read_into(f, view[at : at + size])
            at += size
            view[at : at + 2] = b"\r\n"
            at += 2
        view[at:] = end
    finally:
        for f in opened:
            f.close()
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return body, content_type


def _read_into(f: io.BufferedReader, into: memoryview) -> None:
    """Fill `into` from `f`; raises `OSError` if the file ends first (it shrank)."""
    done = 0
    while done < len(into):
        got = f.readinto(into[done:])
        if not got:
            raise OSError(f"{getattr(f, 'name', 'a staged file')} ended before its size")
        done += got


@dataclass(frozen=True)
class BatchOutcome:
    """What the server said about one batch, by SOP Instance UID."""

    stored: frozenset[str]
    failed: dict[str, int]  # SOP Instance UID -> Failure Reason (0 when it gave none)


def _uid(item: dict[str, Any]) -> str:
    values = item.get(REFERENCED_SOP_INSTANCE_UID, {}).get("Value") or [""]
    return str(values[0])


def _document(answer: object) -> object:
    return answer[0] if isinstance(answer, list) and answer else answer


def is_store_response(answer: object) -> bool:
    """Whether `answer` is a Store Instances Response (it has either sequence)."""
    document = _document(answer)
    return isinstance(document, dict) and bool(
        {REFERENCED_SOP_SEQUENCE, FAILED_SOP_SEQUENCE} & set(document)
    )


def parse_response(answer: object) -> BatchOutcome:
    """The Store Instances Response (DICOM JSON) as stored and failed UIDs; a duplicate counts
    as stored. Anything unexpected in it counts as no answer about those instances."""
    document = _document(answer)
    if not isinstance(document, dict):
        return BatchOutcome(frozenset(), {})
    stored: set[str] = set()
    failed: dict[str, int] = {}
    for item in document.get(REFERENCED_SOP_SEQUENCE, {}).get("Value") or []:
        if isinstance(item, dict) and _uid(item):
            stored.add(_uid(item))
    for item in document.get(FAILED_SOP_SEQUENCE, {}).get("Value") or []:
        if not isinstance(item, dict) or not _uid(item):
            continue
        reason = (item.get(FAILURE_REASON, {}).get("Value") or [0])[0]
        code = reason if isinstance(reason, int) and not isinstance(reason, bool) else 0
        if code == DUPLICATE:
            stored.add(_uid(item))
        else:
            failed[_uid(item)] = code
    return BatchOutcome(frozenset(stored), failed)


def failure_sentence(position: int, total: int, code: int | None) -> str:
    """One refused (or unconfirmed, `code` None) instance, for staff."""
    if code is None:
        return f"Image {position} of {total} was not confirmed as stored by the server."
    why = _REASONS.get(code, "the server refused it")
    number = f" (reason 0x{code:04X})" if code else ""
    return f"Image {position} of {total} was not stored: {why}{number}."


async def _post(
    session: aiohttp.ClientSession, dest: StowDestination, body: memoryview, content_type: str
) -> tuple[int, object, str]:
    """POST one batch, again with the same body while the answer is lost; returns the HTTP
    status, the decoded DICOM JSON answer (None if it is not JSON) and its start as text."""
    headers = {
        **dest.headers(),
        "Content-Type": content_type,
        "Accept": "application/dicom+json",
    }
    for delay in (*RETRY_DELAYS, None):
        try:
            async with session.post(dest.studies_url, data=body, headers=headers) as response:
                text = await response.text(errors="replace")
                if response.status < 500 or delay is None:
                    try:
                        answer = await response.json(content_type=None)
                    except ValueError:
                        answer = None
                    return response.status, answer, " ".join(text.split())[:_DETAIL_CHARS]
        except (aiohttp.ClientError, TimeoutError) as e:
            if delay is None:
                raise _unreachable(
                    dest, f"did not answer ({len(RETRY_DELAYS) + 1} tries of the same images)"
                ) from e
        await asyncio.sleep(delay or 0)
    raise AssertionError("unreachable")  # the loop returns or raises


async def post_batch(
    session: aiohttp.ClientSession,
    dest: StowDestination,
    batch: list[StagedObject],
    files: list[Path],
    total: int,
) -> list[str]:
    """POST `files` (the instances of `batch`) and return a sentence for each instance that
    was not stored (empty when all were). Raises `StowUnreachable` when the server cannot be
    reached or refuses access, and `PacsRefused` when it refuses the request as a whole."""
    body, content_type = await asyncio.to_thread(multipart, files)
    # A memoryview: aiohttp sends a slice of the body as long as it is, which for a bytearray
    # would be a copy of it, per try.
    status, answer, text = await _post(session, dest, memoryview(body), content_type)
    refused = _refused_access(dest, status)
    if refused is not None:
        raise refused
    if status not in (200, 202, 409) and not is_store_response(answer):
        # No Store Instances Response, which the server gives when it read the request (some,
        # Orthanc among them, also with 400 when an instance was unreadable).
        raise errors.PacsRefused(
            f"The DICOMweb server at {dest.url} refused images {batch[0].entry.index + 1} to "
            f"{batch[-1].entry.index + 1} (HTTP {status}: {text or 'no details'})."
        )
    outcome = parse_response(answer)
    sentences = []
    for item in batch:
        uid = item.entry.sop_instance_uid
        if uid not in outcome.stored:
            sentences.append(failure_sentence(item.entry.index + 1, total, outcome.failed.get(uid)))
    return sentences


def _not_stored(dest: StowDestination, sentences: list[str], stored: int) -> errors.PacsRefused:
    more = len(sentences) - _MAX_SENTENCES
    listed = sentences[:_MAX_SENTENCES] + ([f"And {more} more."] if more > 0 else [])
    return errors.PacsRefused(
        f"The DICOMweb server at {dest.url} did not store every image. "
        + " ".join(listed)
        + f" {stored} images were stored; check the server's log, then run again "
        "(images already stored are not duplicated)."
    )


async def _copies(
    batch: list[StagedObject],
    coercion: Coercion,
    headers: Mapping[int, StagedHeader],
    stored: int,
) -> list[Path]:
    """Each image of `batch` filed under the local patient (`transcode.rewrite`, from its
    header in `headers` if there). Raises `PacsRefused` when one does not decode (`stored`
    images were stored before), and `OSError`; no copy is left behind on failure."""
    copies: list[Path] = []
    try:
        for item in batch:
            header = headers.get(item.entry.index)
            copies.append(
                await asyncio.to_thread(transcode.rewrite, item, coercion=coercion, header=header)
            )
    except BaseException as e:
        for path in copies:
            path.unlink(missing_ok=True)
        if isinstance(e, errors.Undecodable):
            raise errors.PacsRefused(
                f"Image {item.entry.index + 1} could not be filed under the local patient "
                f"record ({e.message}). {stored} images were stored."
            ) from e
        raise
    return copies


async def _store_batch(
    session: aiohttp.ClientSession,
    dest: StowDestination,
    batch: list[StagedObject],
    coercion: Coercion | None,
    headers: Mapping[int, StagedHeader],
    total: int,
    stored: int,
) -> tuple[int, list[str]]:
    """Post `batch` (filed under the local patient with `coercion`); returns how many of its
    images the server stored and a sentence for each of the others (`failure_sentence`, of
    `total`). Raises `StowUnreachable`, `PacsRefused` when the server refuses the request as a
    whole or an image does not decode (`stored` images were stored before), and `OSError`."""
    copies = await _copies(batch, coercion, headers, stored) if coercion is not None else []
    try:
        files = copies or [item.path for item in batch]
        sentences = await post_batch(session, dest, batch, files, total)
    finally:
        for path in copies:
            path.unlink(missing_ok=True)
    return len(batch) - len(sentences), sentences


async def store_to_stow(
    staged: list[StagedObject],
    dest: StowDestination,
    coercion: Coercion | None = None,
    on_stored: Callable[[int, int], None] | None = None,
) -> PacsDelivery:
    """STOW-RS every instance, in batches; returns how many were stored (none decompressed).
    With `coercion`, every instance is filed under the local patient, through a copy that is
    removed once its batch is answered. `on_stored(done, total)` is called after each batch.
    Raises `StowUnreachable` if the server cannot be reached or refuses access, `PacsRefused`
    naming every image it did not store (after the batch that had them: the images before
    stay stored), and `OSError` if a copy cannot be written."""
    stored = 0
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for batch in batches(staged):
            done, sentences = await _store_batch(
                session, dest, batch, coercion, {}, len(staged), stored
            )
            stored += done
            if on_stored is not None and done:  # those of a batch partly refused count too
                on_stored(stored, len(staged))
            if sentences:
                raise _not_stored(dest, sentences, stored)
    return PacsDelivery(stored)


class StowAsVerified(Storing):
    """STOW-RS images while the study is still arriving (`redeem --stow ... --as-they-arrive`),
    like `pacs.StoreAsVerified` for C-STORE: `put` each verified image, `close` after the last
    (or `stop` to store nothing more), then `finish` for the delivery.

    `POSTS_AT_ONCE` threads, each with its own event loop and HTTP session, take the images in
    the order they were put: each posts the images waiting when it is free (at most
    `BATCH_IMAGES` and `BATCH_BYTES`), so images that trickle in go one by one, as soon as
    they are verified, and a backlog goes in full batches. With `coercion`, each is filed under
    the local patient. The first failure (a check, a refusal, an unreachable server) stops the
    storing; the images stored before it stay stored. `on_stored(done, put_so_far)` after each
    batch, from the posting threads. `listed`: how many images the study has, for messages
    ("Image 7 of 40"; the images put so far if more)."""

    def __init__(
        self,
        dest: StowDestination,
        coercion: Coercion | None = None,
        on_stored: Callable[[int, int], None] | None = None,
        listed: int = 0,
    ) -> None:
        self.sending = Sending({}, on_stored)
        self._listed = listed
        self._dest = dest
        self._coercion = coercion
        self._large = threading.BoundedSemaphore(LARGE_AT_ONCE)
        self._threads = [
            # Not daemons: at exit each ends after its batch, and its copies are removed.
            threading.Thread(target=self._run, name=f"stow-{n}")
            for n in range(POSTS_AT_ONCE)
        ]
        for thread in self._threads:
            thread.start()

    def finish(self) -> PacsDelivery:
        """Wait for the posting threads to end (after `close` or `stop`); returns what was
        stored, or raises the first failure (`PacsRefused`, `StowUnreachable`, the failure of
        a check, `OSError`). Blocks."""
        for thread in self._threads:
            thread.join()
        return PacsDelivery(self.sending.result())

    def _run(self) -> None:
        """One posting thread; every failure goes into `sending` (never raised)."""
        try:
            with asyncio.Runner() as runner:
                runner.run(self._post_all())
        except BaseException as e:  # handed to the caller through `sending`
            self.sending.failed(e)

    async def _post_all(self) -> None:
        sending = self.sending
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            while (first := sending.next()) is not None:
                large = first.entry.size > BATCH_BYTES  # blocking is fine: this loop runs only this
                with self._large if large else contextlib.nullcontext():
                    await self._post(session, first)

    async def _post(self, session: aiohttp.ClientSession, first: StagedObject) -> None:
        """Post `first` and the images waiting after it that fit in its batch."""
        sending = self.sending
        batch = [first, *sending.more(BATCH_IMAGES - 1, BATCH_BYTES - first.entry.size)]
        headers: dict[int, StagedHeader] = {}
        for item in batch:  # checked here, if put to be; nothing of the batch is posted when
            header = sending.header(item)  # one fails
            if header is not None:
                headers[item.entry.index] = header
        done, sentences = await _store_batch(
            session,
            self._dest,
            batch,
            self._coercion,
            headers,
            max(sending.total, self._listed),
            sending.stored,
        )
        sending.done(count=done)
        if sentences:
            raise _not_stored(self._dest, sentences, sending.stored)
