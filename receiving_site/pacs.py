"""Deliver staged instances: C-STORE into a PACS (pynetdicom), or files into a folder.

Files are sent as their stored bytes (pynetdicom's chunked-from-file mode), so the PACS gets
exactly the dataset the sender had, in its original transfer syntax.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

from receiving_site import errors
from receiving_site.association import pause_reactor, steady
from receiving_site.staging import StagedObject

# Send each file's own bytes without decoding or re-encoding them.
_config.STORE_SEND_CHUNKED_DATASET = True

MAX_CONTEXTS = 128
DEFAULT_CALLING_AE_TITLE = "TRAUMARELAY"
VERIFICATION = "1.2.840.10008.1.1"  # the Verification SOP Class (C-ECHO), PS3.4 A.4
SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}


@dataclass(frozen=True)
class PacsAddress:
    ae_title: str
    host: str
    port: int
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE

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


def check_pacs(pacs: PacsAddress) -> None:
    """Ask the PACS for a verification (C-ECHO) over an association of its own, so that a
    wrong address or a PACS that does not accept us is found before the code is spent.

    Raises `PacsUnreachable`."""
    ae = AE(ae_title=pacs.calling_ae_title)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        raise _unreachable(pacs, assoc)
    steady(assoc)
    try:
        pause_reactor(assoc)
        status = assoc.send_c_echo()
    finally:
        pause_reactor(assoc)
        assoc.release()
    if "Status" not in status or int(status.Status) != 0x0000:
        raise errors.PacsUnreachable(
            f"The PACS {pacs.ae_title} at {pacs.host}:{pacs.port} accepted the connection but "
            "did not answer a verification (C-ECHO). Check that it accepts this system; "
            "nothing was stored."
        )


def check_folder(folder: Path) -> None:
    """Make `folder` if needed and write (then remove) a file in it, so that a folder that
    cannot take the study is found before the code is spent. Raises `FolderUnusable`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".trauma-relay-check-"):
            pass
    except OSError as e:
        raise errors.FolderUnusable(
            f"The folder {folder} cannot be written ({e.strerror or e}); nothing was stored."
        ) from e


def _format(sop_class: str, syntax: str) -> str:
    """A format as staff and PACS administrators name it, e.g. "CT Image Storage in JPEG 2000
    Image Compression" (pydicom's names; the UID itself when pydicom does not know it)."""
    return f"{UID(sop_class).name} in {UID(syntax).name}"


def _refused_formats(staged: list[StagedObject], accepted: set[tuple[str, str]]) -> str:
    refused = Counter(
        (s.entry.sop_class_uid, s.entry.transfer_syntax_uid)
        for s in staged
        if (s.entry.sop_class_uid, s.entry.transfer_syntax_uid) not in accepted
    )
    if not refused:
        return ""
    listed = "; ".join(
        f"{_format(*key)} ({count} {'image' if count == 1 else 'images'})"
        for key, count in sorted(refused.items())
    )
    return (
        f"The PACS does not accept {sum(refused.values())} of the {len(staged)} images in the "
        f"format they were sent: {listed}. Nothing was stored. Ask the PACS administrators to "
        "accept this format for this system, or deliver into a folder with --out."
    )


def store_to_pacs(staged: list[StagedObject], pacs: PacsAddress) -> int:
    """C-STORE every instance over one association; returns how many were stored.

    Every instance's presentation context is checked after negotiation and before the first
    C-STORE: if the PACS refuses any (SOP class, transfer syntax), nothing is sent and
    `PacsRefused` names the formats. Raises `PacsUnreachable` if the association fails, and
    `PacsRefused` if the PACS refuses an instance during the sending (those stored before it
    stay stored: C-STORE has no transaction)."""
    pairs = sorted({(s.entry.sop_class_uid, s.entry.transfer_syntax_uid) for s in staged})
    ae = AE(ae_title=pacs.calling_ae_title)
    # One context per (SOP class, transfer syntax): the acceptor picks a single syntax per
    # context (PS3.8 9.3.3.2), so files of one class in two syntaxes need two contexts.
    requested = [build_context(sop, syntax) for sop, syntax in pairs]
    if len(requested) > MAX_CONTEXTS:
        raise errors.PacsRefused("This study has more kinds of images than one association allows.")
    ae.requested_contexts = requested
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        if assoc.rejected_contexts and not assoc.is_rejected:
            # pynetdicom aborts when the PACS accepts the association but none of its contexts.
            raise errors.PacsRefused(_refused_formats(staged, set()))
        raise _unreachable(pacs, assoc)
    steady(assoc)
    stored = 0
    try:
        accepted = {
            (str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts
        }
        refused = _refused_formats(staged, accepted)
        if refused:
            raise errors.PacsRefused(refused)
        for item in staged:
            pause_reactor(assoc)
            status = assoc.send_c_store(_wire_file(item))
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
            stored += 1
    finally:
        pause_reactor(assoc)
        assoc.release()
    return stored


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


def store_to_folder(staged: list[StagedObject], folder: Path) -> int:
    """Copy every instance into `folder` (named by position, never by a received value).
    Raises `FolderUnusable` if the folder cannot take them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for item in staged:
            target = folder / item.path.name
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(item.path, tmp)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
    except OSError as e:
        raise errors.FolderUnusable(
            f"The study could not be written into {folder} ({e.strerror or e})."
        ) from e
    return len(staged)
