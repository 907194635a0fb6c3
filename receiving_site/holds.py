"""Why a study was held before it reached the PACS, told so that staff can decide: the patient
the ER sent and what the PACS holds, side by side, then what to do, the safest first and
`--skip-identity-check` last, only after review. Pure: facts and commands in, lines out.

The trauma center's staff may see their own PACS's records, so the PACS's side is shown in full:
deciding whether two records are one person needs both names, birth dates and sexes. Values
come from outside (the ER's images, the PACS's answers), so anything a terminal could take as a
control sequence is shown as `?`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from receiving_site.preview import date, person_name, sex_word


def same_name(a: str, b: str) -> bool:
    """Person names compared case-insensitively, ignoring trailing ^ and spaces."""
    return a.rstrip("^ ").casefold() == b.rstrip("^ ").casefold()


@dataclass(frozen=True)
class Person:
    """A patient as one side files them (DICOM values: PN, DA, CS)."""

    patient_id: str
    name: str
    birth_date: str
    sex: str


class Kind(enum.Enum):
    PATIENT_ID = "the PACS holds this patient ID for someone else"
    STUDY = "the PACS holds this study under another patient"
    LOCAL_RECORD = "the record given with --local-patient-id is someone else's"
    NEW_LOCAL = "the record given with --local-patient-id has nothing to check against"
    UNCHECKED = "the PACS could not be asked, or answered unclearly"


@dataclass(frozen=True)
class Hold:
    """What held the study: `reason` is one sentence without its full stop; `pacs` is the
    PACS's record it conflicts with, if there is one; `skippable` says whether
    `--skip-identity-check` would store the study (it skips the check that found this)."""

    kind: Kind
    reason: str
    pacs: Person | None = None
    skippable: bool = False


@dataclass(frozen=True)
class Commands:
    """The commands to continue this redemption, each complete and ready to run."""

    again: str  # the same again, once the PACS answers queries
    confirm: str  # filed under the PACS's record: --local-patient-id ... --confirm-local-record
    other_record: str  # --local-patient-id MRN, for the patient's own record number here
    new_patient: str  # --new-local-patient
    review: str  # --out FOLDER instead of --pacs: the transfer stays open for the PACS
    skip: str  # --skip-identity-check


def _shown(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text.strip())


def _differ(a: str, b: str) -> bool:
    """Both given, and not the same (letter case aside)."""
    return bool(a.strip() and b.strip()) and a.strip().upper() != b.strip().upper()


def _rows(ours: Person, theirs: Person) -> list[tuple[str, str, str, bool]]:
    """(label, ours, theirs, differs) for each line of the table."""
    return [
        (
            "Patient ID",
            ours.patient_id,
            theirs.patient_id,
            _differ(ours.patient_id, theirs.patient_id),
        ),
        (
            "Name",
            person_name(ours.name),
            person_name(theirs.name),
            not same_name(ours.name, theirs.name),
        ),
        (
            "Birth date",
            date(ours.birth_date),
            date(theirs.birth_date),
            _differ(ours.birth_date, theirs.birth_date),
        ),
        ("Sex", sex_word(ours.sex), sex_word(theirs.sex), _differ(ours.sex, theirs.sex)),
    ]


def compared(incoming: Person, pacs: Person) -> list[tuple[str, str, str, bool]]:
    """(label, the ER's value, the PACS's value, differs) for each line, for a page."""
    return [(label, _shown(a), _shown(b), d) for label, a, b, d in _rows(incoming, pacs)]


def compare(incoming: Person, pacs: Person) -> list[tuple[str, str, str, bool]]:
    """(label, the ER's value, the PACS's value, differs) for each line, as `table` shows
    them (for the console's holds queue)."""
    return _rows(incoming, pacs)


def table(incoming: Person, pacs: Person, sender: str) -> list[str]:
    """Both sides in aligned columns, each differing line marked."""
    header = ("", f"Sent by {_shown(sender) or 'the ER'}", "In the PACS", False)
    rows = [header, *((label, _shown(a), _shown(b), d) for label, a, b, d in _rows(incoming, pacs))]
    first = max(len(r[0]) for r in rows)
    second = max(len(r[1]) for r in rows)
    third = max(len(r[2]) for r in rows)
    lines = []
    for label, ours, theirs, differs in rows:
        mark = "  <- differs" if differs else ""
        lines.append(f"  {label:<{first}}  {ours:<{second}}  {theirs:<{third}}{mark}".rstrip())
    return lines


def _remedies(hold: Hold, commands: Commands) -> list[tuple[str, list[str]]]:
    """(what to do, commands for it), the safest first."""
    steps: list[tuple[str, list[str]]] = []
    if hold.kind is Kind.UNCHECKED:
        steps.append(
            (
                "Ask the PACS administrators to let this system query the PACS (C-FIND), then "
                "run the same again:",
                [commands.again],
            )
        )
    else:
        steps.append(("Check the patient in front of you against both columns.", []))
    if hold.kind is Kind.PATIENT_ID:
        steps.append(
            (
                "If the PACS's record is this patient (for example under a trauma alias), file "
                "the images under it, taking its name and birth date:",
                [commands.confirm],
            )
        )
        steps.append(
            (
                "If this patient has another record number here, file the images under it:",
                [commands.other_record],
            )
        )
    elif hold.kind is Kind.LOCAL_RECORD:
        steps.append(
            (
                "If it is the same person (for example under a trauma alias), file the images "
                "under the PACS's name and birth date:",
                [commands.confirm],
            )
        )
    elif hold.kind is Kind.NEW_LOCAL:
        steps.append(
            ("If the number was just given to this patient, say so:", [commands.new_patient])
        )
    elif hold.kind is Kind.STUDY:
        steps.append(("If the images may be another patient's, call the sending hospital.", []))
    steps.append(
        (
            "To look at the images first, save them in a folder; nothing goes to the PACS and "
            "the transfer stays open for it:",
            [commands.review],
        )
    )
    if hold.skippable:
        steps.append(
            (
                "Only after a person has reviewed this and decided the images belong in the "
                "PACS as they are, store them without this check:",
                [commands.skip],
            )
        )
    return steps


def explain(hold: Hold, incoming: Person, sender: str, commands: Commands) -> str:
    """The whole message: the reason, both sides, and the numbered steps with their commands."""
    lines = [f"{_shown(hold.reason)}; the study was held for review. Nothing was stored."]
    if hold.pacs is not None:
        lines += ["", *table(incoming, hold.pacs, sender)]
    lines += ["", "What to do:"]
    for number, (what, runs) in enumerate(_remedies(hold, commands), 1):
        lines.append(f"  {number}. {what}")
        lines += [f"       {run}" for run in runs]
    return "\n".join(lines)
