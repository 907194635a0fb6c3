"""Keep an instance made at this site (a report, not received over DICOM) in the spool, through
the same durable steps the Storage SCP takes: written under `incoming/` and flushed to disk,
checked whole, kept in `instances/`, indexed. From then on it is part of its study like every
received image, and a push (or a followed push) seals and sends it."""

from __future__ import annotations

import asyncio
import time
import warnings
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from sending_site import collect, report
from sending_site.inbox import arrival, errors
from sending_site.inbox.arrival import Refusal
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.spool import Spool, new_id

SOURCE_AE_TITLE = "TRAUMARELAY"  # recorded as the "calling AE" of what this site made


def part10(ds: Dataset) -> bytes:
    """`ds` as a spool file: a zeroed preamble, file meta built here, the data set in
    Explicit VR Little Endian."""
    header = arrival.part10_header(
        str(ds.SOPClassUID), str(ds.SOPInstanceUID), ExplicitVRLittleEndian, SOURCE_AE_TITLE
    )
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return header + buffer.getvalue()


def _checked(path: Path, instance_id: str, size: int, now: float) -> arrival.Arrival:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = collect.read_checked(path)
        return arrival.describe(
            ds,
            instance_id=instance_id,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            size=size,
            arrived_at=now,
            calling_ae_title=SOURCE_AE_TITLE,
        )


async def deposit(spool: Spool, index: InboxIndex, ds: Dataset, now: float | None = None) -> Path:
    """Keep `ds` in the spool and index it under its study; returns its spool file. Raises
    `InstanceNotKept` (nothing is left behind) when it is not fit to keep or would land on
    another patient's record."""
    data = part10(ds)
    instance_id = new_id()
    incoming = await asyncio.to_thread(spool.write_incoming, instance_id, (data,))
    try:
        found = await asyncio.to_thread(
            _checked, incoming, instance_id, len(data), time.time() if now is None else now
        )
    except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError) as e:
        spool.discard(incoming)
        raise errors.InstanceNotKept(f"It could not be kept: it is damaged ({e}).") from e
    refused = arrival.refusal(found, found.sop_class_uid, found.sop_instance_uid)
    if refused:
        spool.discard(incoming)
        raise errors.InstanceNotKept(f"It could not be kept: {refused.reason}.")
    kept = await asyncio.to_thread(spool.keep, incoming, instance_id)
    outcome = await index.record(found)
    if isinstance(outcome, Refusal):
        spool.discard(kept)
        raise errors.InstanceNotKept(f"It could not be kept: {outcome.reason}.")
    if outcome.replaced:
        spool.discard(spool.path_of(outcome.replaced))
    return kept


async def add_report(
    spool_root: Path, study_instance_uid: str, pdf: bytes, title: str = report.DEFAULT_TITLE
) -> Path:
    """Add `pdf` to a spooled study as an Encapsulated PDF instance (`report.encapsulated_pdf`)
    and keep it (`deposit`); returns its spool file. Raises `ReportNotPdf`, `ReportTooLarge`,
    `StudyNotSpooled`, `SpoolUnusable` or `InstanceNotKept`."""
    report.check_pdf(pdf)  # before anything is opened
    spool = Spool.open(spool_root)
    index = await InboxIndex.open(spool.index)
    try:
        study = await index.study(study_instance_uid)
        if study is None:
            raise errors.StudyNotSpooled()
        ds = report.encapsulated_pdf(pdf, study, datetime.now().astimezone(), title)
        return await deposit(spool, index, ds)
    finally:
        await index.close()
