"""The sending site's local record of each transfer: enough to resume an interrupted upload and
to re-issue a code without re-uploading. It holds the data key, so it is written 0600 in the
site's own state folder and never leaves the hospital."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sending_site import errors
from site_agent import file_lock
from site_agent.local_state import site_folder, write_atomically
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64decode_text, b64encode_text


@dataclass
class JournalObject:
    index: int
    path: str
    size: int
    mtime_ns: int = 0


@dataclass
class TransferJournal:
    transfer_id: str
    relay: str
    recipient: str
    data_key: bytes
    locator: int
    code: str
    capability: str
    authorization_token: str
    expires_at: float
    objects: list[JournalObject]
    done: bool = False
    # Seals what the patient's phone reads; rides only in the link's fragment. Journals written
    # before the phone pages have none: push makes one when it resumes them.
    phone_key: str = ""
    # Why this transfer was given up (revoked, expired, replaced...); set together with `done`,
    # so it is never resumed. Empty for transfers that finished, and in older journals.
    abandoned: str = ""
    # SHA-256 of the patient's identity (ID, issuer, name), to tell whether a later push of the
    # same files is the same patient's; empty in older journals. The journal already holds the
    # key to the whole study, so this digest reveals nothing more.
    patient: str = ""
    # SHA-256 of each Study Instance UID sent, so a later push of the same study (unchanged or
    # not) finds this transfer; empty in older journals, which are matched by their files only.
    studies: list[str] = field(default_factory=list)
    created_at: float = 0.0  # seconds since the epoch, on this machine; 0 in older journals

    # For the transfer sheet, which a re-issue prints again: the study's description(s) and
    # series count (the image count is len(objects)); empty in older journals.
    study_description: str = ""
    series_count: int = 0
    # When each code the relay accepted for this transfer was issued (seconds since the
    # epoch), oldest first, so a re-issued sheet can say which code it replaces.
    issued_at: list[float] = field(default_factory=list)
    # Whose study this is, as staff read it ("DOE, JANE, record ER-1, born 1985-02-14"), so the
    # console can name the patient beside each transfer; empty in older journals.
    patient_label: str = ""
    # Its manifest was closed marked incomplete (staff stopped waiting for more images): the
    # trauma center does not import it as the whole study, so sending the study again replaces it.
    incomplete: bool = False
    # The trauma center's name as the relay's directory shows it ("County Level I Trauma
    # Center"), kept once the relay has said it (`remember_recipient`), so that pages still name
    # it so while the relay is out of reach; empty until then, and in older journals.
    recipient_display_name: str = ""
    # Whether the relay said it took `code`: False from when a re-issue saves the code it drew
    # (before asking the relay) until the relay answers that it took it, whose time then joins
    # `issued_at`. A re-issue whose answer never came leaves it False: the relay may hold this
    # code or still the one before, so neither is shown or printed as working until a later
    # re-issue is confirmed. `issued_at` cannot say it alone: it holds times, not which code
    # each was. True in older journals.
    code_confirmed: bool = True

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """What must be unchanged for a resumed upload to re-seal identical bytes: sealing is
        deterministic per (key, index), so other content under the same index would reuse
        nonces. Files whose path, size or modification time differ start a new transfer."""
        return [(o.path, o.size, o.mtime_ns) for o in self.objects]

    def paths(self) -> set[str]:
        return {o.path for o in self.objects}


LOCK_NAME = ".journals.lock"
REISSUE_LOCK_NAME = ".reissue.lock"


def _folder(state_dir: Path) -> Path:
    return site_folder(state_dir, "sending")


def as_json(journal: TransferJournal) -> dict[str, Any]:
    """The journal as `save` writes it: what `dataclasses.asdict` gives, the data key in
    base64. Built field by field: a followed study saves its journal each time images are
    added, and `asdict`'s deep copy of every object made those saves the push's largest cost
    on a study of thousands of images."""
    body: dict[str, Any] = {f.name: getattr(journal, f.name) for f in fields(journal)}
    body["objects"] = [
        {"index": o.index, "path": o.path, "size": o.size, "mtime_ns": o.mtime_ns}
        for o in journal.objects
    ]
    body["data_key"] = b64encode_text(journal.data_key)
    return body


def _locked(state_dir: Path) -> contextlib.AbstractContextManager[None]:
    """The journals' lock: a push and a re-issue of the same transfer, in this process or
    another, each read and write a journal whole, in turn."""
    return file_lock.held(_folder(state_dir) / LOCK_NAME)


def reissuing(state_dir: Path) -> contextlib.AbstractAsyncContextManager[None]:
    """One re-issue at a time on this state folder, in this process or another (a second tab,
    the command line): each draws its code, has the relay take it and saves it before the next
    starts, so the code kept is the one the relay took last. Waited for off the loop."""
    return file_lock.waited_for(_folder(state_dir) / REISSUE_LOCK_NAME)


def _write(state_dir: Path, journal: TransferJournal) -> None:
    body = as_json(journal)
    write_atomically(_folder(state_dir) / f"{journal.transfer_id}.json", json.dumps(body).encode())


def save(state_dir: Path, journal: TransferJournal) -> None:
    """Write atomically and durably (`site_agent.local_state.write_atomically`)."""
    with _locked(state_dir):
        _write(state_dir, journal)


def save_from_push(state_dir: Path, journal: TransferJournal) -> TransferJournal:
    """Save a push's journal, keeping the code it finds on disk, and the transfer given up if
    it was. A push never changes its transfer's code once made, but a re-issue (the ER
    console's Give a new code, or `reissue` in another terminal) may while the push runs, and
    staff may revoke it: the push's copy must bring neither the old code nor the transfer back.
    The trauma center's display name the console kept (`remember_recipient`) stays too.
    Returns what was saved."""
    with _locked(state_dir):
        try:
            on_disk: TransferJournal | None = load(state_dir, journal.transfer_id)
        except errors.TransferJournalError:
            on_disk = None
        if on_disk is not None:
            journal = replace(
                journal,
                code=on_disk.code,
                capability=on_disk.capability,
                issued_at=on_disk.issued_at,
                code_confirmed=on_disk.code_confirmed,
                recipient_display_name=on_disk.recipient_display_name,
            )
            if on_disk.abandoned and not journal.abandoned:
                journal = replace(journal, done=True, abandoned=on_disk.abandoned)
        _write(state_dir, journal)
    return journal


def give_up(state_dir: Path, transfer_id: str, reason: str) -> TransferJournal:
    """Mark the journal on disk given up (`abandoned`), leaving the rest as the latest save
    left it. Returns the journal saved."""
    with _locked(state_dir):
        record = replace(load(state_dir, transfer_id), done=True, abandoned=reason)
        _write(state_dir, record)
    return record


def change_code(
    state_dir: Path,
    transfer_id: str,
    *,
    code: str,
    capability: str,
    issued_at: float | None = None,
    confirmed: bool | None = None,
    only_if: str | None = None,
) -> TransferJournal:
    """Give the journal on disk a new code and capability (`issued_at`: when the relay took
    them), leaving the rest as the latest save left it: a push may be saving its progress.
    `confirmed` (`TransferJournal.code_confirmed`): by default, exactly when `issued_at` is
    given; a code put back says how it stood. `only_if`: only while the code on disk is this
    one (another re-issue, run meanwhile, has the last word). Returns the journal on disk."""
    with _locked(state_dir):
        record = load(state_dir, transfer_id)
        if only_if is not None and record.code != only_if:
            return record
        issued = [*record.issued_at, issued_at] if issued_at is not None else record.issued_at
        record = replace(
            record,
            code=code,
            capability=capability,
            issued_at=issued,
            code_confirmed=issued_at is not None if confirmed is None else confirmed,
        )
        _write(state_dir, record)
    return record


def remember_recipient(
    state_dir: Path, record: TransferJournal, display_name: str
) -> TransferJournal:
    """Keep the trauma center's display name the relay gave for `record` (read by the caller)
    in the journal on disk, unless it holds that name already (or the relay gave none). The
    journal is read again under the lock, so nothing saved since is undone. Returns the
    journal on disk."""
    if not display_name or record.recipient_display_name == display_name:
        return record
    with _locked(state_dir):
        record = load(state_dir, record.transfer_id)
        if record.recipient_display_name != display_name:
            record = replace(record, recipient_display_name=display_name)
            _write(state_dir, record)
    return record


def forget_secrets(state_dir: Path, record: TransferJournal) -> TransferJournal:
    """Once a finished transfer is over on the relay (delivered, expired or revoked, or
    discarded at the trauma center), nothing
    needs its data key, QR capability, authorization token or phone key any more: they are
    dropped from the journal, so a later copy of this folder opens nothing. The code stays,
    as words for messages (it unlocks nothing now). An unfinished journal is left as it is:
    the next push of the same study reads it to decide. `record` is what the caller read; the
    journal is read again under the lock, so nothing saved since is undone."""
    if not record.done:
        return record
    with _locked(state_dir):
        record = load(state_dir, record.transfer_id)
        if not record.done or not (
            record.data_key or record.capability or record.authorization_token or record.phone_key
        ):
            return record
        forgotten = replace(
            record, data_key=b"", capability="", authorization_token="", phone_key=""
        )
        _write(state_dir, forgotten)
    return forgotten


def load(state_dir: Path, transfer_id: str) -> TransferJournal:
    if not is_transfer_id(transfer_id):
        raise errors.TransferJournalError(f"{transfer_id!r} is not a transfer id.")
    path = _folder(state_dir) / f"{transfer_id}.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        body["data_key"] = b64decode_text(body["data_key"])
        body["objects"] = [JournalObject(**o) for o in body["objects"]]
        return TransferJournal(**body)
    except FileNotFoundError as e:
        raise errors.TransferJournalError(
            f"This machine has no record of transfer {transfer_id}."
        ) from e
    except (ValueError, KeyError, TypeError) as e:
        raise errors.TransferJournalError(
            f"The local record of transfer {transfer_id} is damaged ({e})."
        ) from e


def every(state_dir: Path) -> list[TransferJournal]:
    """Every transfer this site has a record of, finished or not."""
    return [load(state_dir, transfer_id) for transfer_id in transfer_ids(state_dir)]


def unfinished(state_dir: Path) -> list[TransferJournal]:
    return [journal for journal in every(state_dir) if not journal.done]


def transfer_ids(state_dir: Path) -> list[str]:
    """Every transfer this site keeps a record of, finished or not (`load` reads each). The
    agent's other files beside them (the console's accounts) are not transfers."""
    paths = sorted(_folder(state_dir).glob("*.json"))
    return [path.stem for path in paths if is_transfer_id(path.stem)]
