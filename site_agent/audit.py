"""The agent's local audit log: `<agent folder>/console-audit.jsonl`, one JSON object a line,
appended and fsynced, never rewritten. Each line carries the SHA-256 of the line before it
(`prev`), so a removed or edited line breaks the chain (`verify_chain`).

What is recorded: who (console user, or the operating-system account at the command line), what
(an action from `EVENT_IDS`, with its DICOM PS3.15 A.5 event id), when, from where, and the
outcome. Never a password, a session id or a CSRF token.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

FILE = "console-audit.jsonl"
GENESIS = "0" * 64
USER_AUTHENTICATION = "110114"
SECURITY_ALERT = "110113"
IMPORT = "110107"
QUERY = "110112"
INSTANCES_TRANSFERRED = "110104"
INSTANCES_ACCESSED = "110103"
PATIENT_RECORD = "110110"
EXPORT = "110106"
STUDY_DELETED = "110105"

EVENT_IDS = {
    "sign-in": USER_AUTHENTICATION,
    "sign-in-refused": USER_AUTHENTICATION,
    "sign-in-throttled": SECURITY_ALERT,
    "sign-out": USER_AUTHENTICATION,
    "session-expired": USER_AUTHENTICATION,
    "form-refused": SECURITY_ALERT,
    "user-added": SECURITY_ALERT,
    "user-removed": SECURITY_ALERT,
    "password-changed": SECURITY_ALERT,
    # The ER console's actions on studies and transfers (PS3.15 A.5.3).
    "pacs-query": QUERY,
    "pacs-retrieve": INSTANCES_TRANSFERRED,
    "transfer-started": EXPORT,
    "completeness-acknowledged": EXPORT,
    "break-glass": SECURITY_ALERT,
    "code-reissued": EXPORT,
    "transfer-revoked": EXPORT,
    "sheet-printed": EXPORT,
    "transfer-viewed": INSTANCES_ACCESSED,
    # A study's page in the ER console (the patient, its series): `study`, the inbox's id of
    # it, as the page's address names it; not the page's own refreshes.
    "study-viewed": INSTANCES_ACCESSED,
    # A list naming patients a person was shown (`page`: studies or transfers here, imports or
    # holds at the trauma center) with how many it `listed`, never who; not an empty list, nor
    # the page's own refreshes (`site_agent.console.page_views`). A search of the recent studies
    # is a query: what it searched is never recorded, only how many it `found`.
    "list-viewed": PATIENT_RECORD,
    "studies-searched": QUERY,
    "following-stopped": EXPORT,
    "report-added": INSTANCES_TRANSFERRED,  # an instance made here, kept with the study
    "report-refused": INSTANCES_TRANSFERRED,
    # The sending agent's DICOM node: an association's images (kept and refused) once it
    # ends, and an association it refused (`sending_site.inbox.audited`).
    "images-received": INSTANCES_TRANSFERRED,
    "association-refused": SECURITY_ALERT,
    # The trauma console: a code redeemed (its images opened), an import a person confirmed,
    # and the study stored. Each page of an import or a held study a person opens is a
    # `transfer-viewed` (`page`: imports or holds), not the page's own refreshes; the code or
    # QR of an import open or redeemed there, entered again, opens its page and sends nothing.
    "study-redeemed": INSTANCES_ACCESSED,
    "import-confirmed": IMPORT,
    "study-imported": IMPORT,
    # A local record number checked against the PACS (the PACS is asked about a patient: the
    # number, whether the PACS knew it and which values differ, or why it could not be checked:
    # `outcome` refused or failure), and Continue (or Check again) of a stopped import. Each
    # step posted from a page left open after the import moved on is recorded refused (`why:
    # moved-on`), as is such a confirmation (`import-confirmed`).
    "import-record-checked": QUERY,
    "import-continued": IMPORT,
    # A Modality Worklist search, on an import's identity step or a held study's page: by what
    # and how many patients it found, never the values (`worklist_search.audited`).
    "worklist-query": QUERY,
    # A person resolving a held study at the trauma center (receiving_site.holds_queue).
    "hold-store-anyway": IMPORT,
    "hold-try-again": IMPORT,
    "hold-confirm-local-record": IMPORT,
    "hold-new-local-patient": IMPORT,
    "hold-other-record": IMPORT,
    "hold-save-to-folder": EXPORT,
    "hold-discard": STUDY_DELETED,
    # At the command line, by the operating-system account, `where` local, `via` command line
    # (`site_agent.commands.audit_command`): a transfer started or resumed (`push`:
    # `transfer-started`), break-glass, a new code and a revocation (`break-glass` or `push
    # --break-glass`, `reissue`, `revoke`), a transfer sheet written (`push` or `reissue`
    # `--sheet`: `sheet-printed`), as the console's actions (`sending_site.command_audit`); a
    # study redeemed (`study-redeemed`), then imported into the PACS (`study-imported`) or
    # written to a folder (`study-exported`).
    "study-exported": EXPORT,
}


def _digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _last_line(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            lines = f.read().rstrip(b"\n").split(b"\n")
    except FileNotFoundError:
        return None
    return lines[-1] if lines and lines[-1] else None


class AuditLog:
    """Append-only and hash-chained; shared safely by threads, and by processes (the console
    and the command line) through a lock on the file."""

    def __init__(self, folder: Path, clock: Callable[[], float]) -> None:
        self.path = folder / FILE
        self._clock = clock
        self._lock = threading.Lock()

    def record(
        self, action: str, *, who: str, where: str, outcome: str = "success", **detail: object
    ) -> None:
        """Append one record (a KeyError for an action missing from `EVENT_IDS`)."""
        moment = datetime.datetime.fromtimestamp(self._clock(), tz=datetime.UTC)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # Another process (the command line) may append too: one at a time, so the
                # chain never forks.
                fcntl.flock(fd, fcntl.LOCK_EX)
                previous = _last_line(self.path)
                entry = {
                    "at": moment.isoformat(timespec="milliseconds"),
                    "event_id": EVENT_IDS[action],
                    "action": action,
                    "who": who,
                    "where": where,
                    "outcome": outcome,
                    **({"detail": detail} if detail else {}),
                    "prev": _digest(previous) if previous else GENESIS,
                }
                line = json.dumps(entry, ensure_ascii=False, sort_keys=True).encode() + b"\n"
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    async def arecord(
        self, action: str, *, who: str, where: str, outcome: str = "success", **detail: object
    ) -> None:
        """`record` off the event loop (it reads the last line and fsyncs)."""
        await asyncio.to_thread(
            self.record, action, who=who, where=where, outcome=outcome, **detail
        )


def verify_chain(path: Path) -> int:
    """The number of records in `path`; `ValueError` naming the first line whose `prev` does
    not match the line before it."""
    previous = GENESIS
    count = 0
    for count, line in enumerate(path.read_bytes().splitlines(), start=1):
        if json.loads(line)["prev"] != previous:
            raise ValueError(f"{path}: line {count} does not follow line {count - 1}")
        previous = _digest(line)
    return count
