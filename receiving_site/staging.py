"""Download, open and verify every sealed object into a local staging folder before anything
reaches a PACS. Bounded memory: objects stream through the opener to disk.

Each staged file is the sender's exact bytes except the 128-byte preamble, which is zeroed
(it can carry an executable: CVE-2019-11687, PS3.10 7.5); the SHA-256 is checked on the
original bytes as the manifest lists them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from receiving_site import errors, staged_header
from receiving_site.staged_header import StagedHeader
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes.errors import TransferCodeError
from transfer_codes.manifest import ManifestEntry, StudySummary
from transfer_codes.sealed import ObjectOpener

PREAMBLE = 128
RETRIES = 5


@dataclass(frozen=True)
class StagedObject:
    entry: ManifestEntry
    path: Path


def staged_path(folder: Path, index: int) -> Path:
    return folder / f"IM{index:06d}.dcm"


async def stage_object(
    client: RelayClient, transfer_id: str, data_key: bytes, entry: ManifestEntry, folder: Path
) -> StagedObject:
    """Fetch object `entry.index`, resuming the HTTP stream after a dropped connection, open it,
    and check size and SHA-256 against the manifest. Raises `VerificationFailed`."""
    final = staged_path(folder, entry.index)
    if final.exists():
        return StagedObject(entry, final)
    partial = final.with_suffix(".part")
    opener = ObjectOpener(data_key, transfer_id, entry.index)
    digest = hashlib.sha256()
    received = 0
    written = 0
    attempts = 0
    with partial.open("wb") as out:
        while True:
            try:
                async for block in client.download(transfer_id, entry.index, received):
                    received += len(block)
                    plain = opener.feed(block)
                    written = _write(out, plain, written, digest)
                break
            except RelayUnreachable:
                attempts += 1
                if attempts > RETRIES:
                    raise
                await asyncio.sleep(min(2**attempts * 0.25, 5))
            except RelayRefused as e:
                raise download_refused(e, entry) from e
            except TransferCodeError as e:
                raise errors.VerificationFailed(
                    f"Image {entry.index + 1} failed verification ({e}). Nothing was stored in "
                    "the PACS. Call the sending hospital."
                ) from e
        try:
            written = _write(out, opener.finish(), written, digest)
        except TransferCodeError as e:
            raise errors.VerificationFailed(
                f"Image {entry.index + 1} failed verification ({e}). Nothing was stored in the "
                "PACS. Call the sending hospital."
            ) from e
        out.flush()
        # In a thread: the other downloads go on meanwhile, and their fsyncs can share a commit.
        await asyncio.to_thread(os.fsync, out.fileno())
    if written != entry.size or digest.hexdigest() != entry.sha256:
        partial.unlink(missing_ok=True)
        raise errors.VerificationFailed(
            f"Image {entry.index + 1} does not match the manifest (size or checksum). Nothing was "
            "stored in the PACS. Call the sending hospital."
        )
    os.replace(partial, final)
    return StagedObject(entry, final)


def download_refused(e: RelayRefused, entry: ManifestEntry) -> errors.ReceivingError:
    """What the relay's refusal to send the image of `entry` means: the transfer gone for good
    (expired or withdrawn meanwhile: `TransferGone`), else an image it cannot provide, though the
    manifest lists only objects it acknowledged as complete (`VerificationFailed`)."""
    if e.code in errors.GONE_AT_THE_RELAY:
        return errors.TransferGone(f"{errors.TransferGone().message} (The relay said: {e.detail})")
    return errors.VerificationFailed(
        f"Image {entry.index + 1} is listed in the transfer, but the relay cannot provide it "
        f"({e.detail}). Nothing was stored in the PACS. Call the sending hospital."
    )


def _write(out: BinaryIO, plain: bytes, written: int, digest: hashlib._Hash) -> int:
    """Append plaintext, hashing the original bytes but zeroing the preamble on disk."""
    if not plain:
        return written
    digest.update(plain)
    if written < PREAMBLE:
        cut = min(PREAMBLE - written, len(plain))
        out.write(b"\x00" * cut)
        out.write(plain[cut:])
    else:
        out.write(plain)
    return written + len(plain)


@dataclass(frozen=True)
class Checked:
    """What `check_object` found for one staged file, kept to be told in order later: the
    header it read (None if not kept), or its failure."""

    header: Dataset | None
    failure: Exception | None = None


def check_early(item: StagedObject, summary: StudySummary, *, keep_header: bool) -> Checked:
    """`check_object` while the other images still download, its outcome kept (not raised):
    `check_identity` tells it in order once every image is staged."""
    try:
        header = check_object(item, summary)
    except Exception as e:  # told later, in image order, as check_identity would
        return Checked(None, e)
    return Checked(header if keep_header else None)


def check_identity(
    staged: list[StagedObject],
    summary: StudySummary,
    checked: Mapping[int, Checked] | None = None,
    *,
    keep_headers: bool = False,
) -> dict[int, Dataset]:
    """Every staged file must parse as DICOM, carry the SOP Instance UID the manifest lists,
    and belong to the patient in the summary; else nothing is stored (hold for a human). The
    first failure in image order is raised, whether found now or by `check_early` (`checked`,
    by image index). With `keep_headers`, returns each image's header by image index (else
    nothing: a large study's headers are not all held at once)."""
    headers: dict[int, Dataset] = {}
    for item in staged:
        early = checked.get(item.entry.index) if checked else None
        if early is None:
            header: Dataset | None = check_object(item, summary)
        elif early.failure is not None:
            raise early.failure
        else:
            header = early.header
        if keep_headers:
            headers[item.entry.index] = (
                header if header is not None else check_object(item, summary)
            )
    return headers


def check_object(item: StagedObject, summary: StudySummary) -> Dataset:
    """`check_identity` of one staged file, before it is stored on its own: raises
    `VerificationFailed` if it is not readable DICOM or not the image the manifest lists,
    `IdentityMismatch` if it belongs to another patient than the summary's. Returns its header
    (read without pixel data)."""
    return check_header(item, summary).dataset


def check_header(item: StagedObject, summary: StudySummary) -> StagedHeader:
    """`check_object`, returning the header as read (`staged_header`): filing under the local
    record takes it from here instead of reading the file again."""
    expected = (summary.patient_id, summary.issuer_of_patient_id, summary.patient_name)
    try:
        header = staged_header.read(item.path, item.entry.index + 1)
    except (InvalidDicomError, ValueError, EOFError, OSError) as e:
        raise errors.VerificationFailed(
            f"Image {item.entry.index + 1} is not readable DICOM ({e}). Nothing was stored."
        ) from e
    ds = header.dataset
    if str(ds.get("SOPInstanceUID", "")) != item.entry.sop_instance_uid:
        raise errors.VerificationFailed(
            f"Image {item.entry.index + 1} is not the image the manifest lists. Nothing was stored."
        )
    meta = getattr(ds, "file_meta", None)
    syntax = "" if meta is None else str(meta.get("TransferSyntaxUID", ""))
    if item.entry.transfer_syntax_uid and syntax != item.entry.transfer_syntax_uid:
        # What the PACS is offered and what is decompressed are chosen from the manifest's
        # format: an image in another one would reach it under the wrong one.
        raise errors.VerificationFailed(
            f"Image {item.entry.index + 1} is not in the format (transfer syntax) the manifest "
            "lists. Nothing was stored. Call the sending hospital."
        )
    found = (
        str(ds.get("PatientID", "")),
        str(ds.get("IssuerOfPatientID", "")),
        str(ds.get("PatientName", "")),
    )
    if found != expected:
        raise errors.IdentityMismatch()
    header.restore()
    return header
