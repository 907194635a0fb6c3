"""Why a study is held, kept beside its key in the state folder (`hold-<transfer id>.json`), so
that the holds queue (`holds_queue`) can list it after the command line or the console that
held it has stopped: the reason, the patient as the ER sent them and the PACS's record it
conflicts with, and what the run that held it had been asked to do (its PACS, its local record
number), which every resolution starts from.

The file goes with the key: `state.forget_key` removes it once the study is delivered. Like
every state file it is 0600 in a 0700 folder, written atomically. It holds patient data, as the
staged images beside it do; nothing of it leaves this machine.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from receiving_site import state
from receiving_site.holds import Kind, Person
from site_agent.local_state import write_atomically
from transfer_codes.tokens import is_transfer_id


class Reason(enum.Enum):
    """Why the study was held, as the queue says it."""

    PATIENT_ID = "The PACS holds this patient ID for someone else"
    STUDY = "The PACS holds this study under another patient"
    LOCAL_RECORD = "The local record given is someone else's"
    NEW_LOCAL = "The local record given has nothing to check against"
    UNCHECKED = "The PACS could not be asked about this patient, or answered unclearly"
    PACS_REFUSED = "The PACS refused the images"
    MIXED_PATIENTS = "The images do not all belong to one patient"

    @classmethod
    def of(cls, kind: Kind) -> Reason:
        """The reason for an identity hold (`holds.Kind`)."""
        return cls[kind.name]


@dataclass(frozen=True)
class HeldStudy:
    """One held transfer. `sentence` is what the run that held it said (one sentence);
    `skippable`: storing without the identity check would store it (`--skip-identity-check`);
    `pacs` (AET@HOST:PORT, empty for a folder) and `calling_ae_title`, `local_patient_id`,
    `local_issuer`, `confirm_local_record` and `new_local_patient` are what that run was given
    (what staff had already checked about the local record, which a resolution keeps); `at` is
    when it was held (seconds since the epoch). `stored_in_pacs`: images of it the PACS already
    holds (stored as they arrived, before what held it was found), so the study there is
    incomplete, and a discard here leaves them there. Fields with defaults were added later: a
    hold saved before them reads back with the default."""

    transfer_id: str
    reason: Reason
    sentence: str
    skippable: bool
    pacs: str
    calling_ae_title: str
    sender: str
    break_glass: bool
    ours: Person  # the patient the ER sent
    theirs: Person | None  # the PACS's record it conflicts with, if any
    study: str  # description and date, to recognise it by
    image_count: int
    local_patient_id: str | None
    local_issuer: str
    at: float
    review_copy: str = ""  # the folder a copy was saved in for review, if one was
    confirm_local_record: bool = False  # staff checked the PACS's record is this patient
    new_local_patient: bool = False  # staff said `local_patient_id` was just given to them
    stored_in_pacs: int = 0  # images already in the PACS, of `image_count`


def _path(state_dir: Path, transfer_id: str) -> Path:
    if not is_transfer_id(transfer_id):
        raise ValueError(f"not a transfer id: {transfer_id!r}")
    return state.folder(state_dir) / f"hold-{transfer_id}.json"


def save(state_dir: Path, held: HeldStudy) -> None:
    body = asdict(held)
    body["reason"] = held.reason.name
    write_atomically(_path(state_dir, held.transfer_id), json.dumps(body).encode())


def _person(body: Any) -> Person:
    return Person(**{k: str(body[k]) for k in ("patient_id", "name", "birth_date", "sex")})


def _parse(body: dict[str, Any]) -> HeldStudy:
    theirs = body.get("theirs")
    local = body.get("local_patient_id")
    return HeldStudy(
        transfer_id=str(body["transfer_id"]),
        reason=Reason[str(body["reason"])],
        sentence=str(body["sentence"]),
        skippable=bool(body["skippable"]),
        pacs=str(body["pacs"]),
        calling_ae_title=str(body["calling_ae_title"]),
        sender=str(body["sender"]),
        break_glass=bool(body["break_glass"]),
        ours=_person(body["ours"]),
        theirs=None if theirs is None else _person(theirs),
        study=str(body["study"]),
        image_count=int(body["image_count"]),
        local_patient_id=None if local is None else str(local),
        local_issuer=str(body["local_issuer"]),
        at=float(body["at"]),
        review_copy=str(body.get("review_copy", "")),
        confirm_local_record=body.get("confirm_local_record") is True,
        new_local_patient=body.get("new_local_patient") is True,
        stored_in_pacs=int(body.get("stored_in_pacs", 0)),
    )


def load(state_dir: Path, transfer_id: str) -> HeldStudy | None:
    """The hold of `transfer_id`, if it is still held on this machine (its key is kept)."""
    try:
        path = _path(state_dir, transfer_id)
    except ValueError:
        return None
    if not path.with_name(f"{transfer_id}.json").exists():
        return None  # delivered, or discarded: the hold went with the key
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def held_studies(state_dir: Path) -> list[HeldStudy]:
    """Every study held on this machine, the longest waiting first."""
    folder = state.folder(state_dir)
    found = []
    for path in folder.glob("hold-*.json"):
        held = load(state_dir, path.name[len("hold-") : -len(".json")])
        if held is not None:
            found.append(held)
    return sorted(found, key=lambda h: (h.at, h.transfer_id))


@dataclass(frozen=True)
class Resolved:
    """What a person decided about a study held here that ended its hold (stored it, or
    discarded it), kept once the hold is gone (`resolved-<transfer id>.json`), so that a
    decision posted afterwards, from a page left open, can say what became of it. No patient
    data: `action` is the choice's audit action (`holds_queue.Choice`), `who` decided, `at`
    when (seconds since the epoch), `instances` how many images were stored (0 for a discard).
    """

    transfer_id: str
    action: str
    who: str
    at: float
    instances: int = 0


def _resolved_path(state_dir: Path, transfer_id: str) -> Path:
    return _path(state_dir, transfer_id).with_name(f"resolved-{transfer_id}.json")


def save_resolved(state_dir: Path, resolved: Resolved) -> None:
    write_atomically(
        _resolved_path(state_dir, resolved.transfer_id), json.dumps(asdict(resolved)).encode()
    )


def resolved(state_dir: Path, transfer_id: str) -> Resolved | None:
    """How the hold of `transfer_id` was resolved here, if a person resolved it; None for an id
    that is no transfer id, or whose hold no decision here ended (still held, or never)."""
    try:
        path = _resolved_path(state_dir, transfer_id)
        body = json.loads(path.read_text(encoding="utf-8"))
        return Resolved(
            transfer_id=str(body["transfer_id"]),
            action=str(body["action"]),
            who=str(body["who"]),
            at=float(body["at"]),
            instances=int(body.get("instances", 0)),
        )
    except (ValueError, KeyError, TypeError, FileNotFoundError):
        return None
