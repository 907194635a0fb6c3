"""Whose images are where: the refusal of a push that mixes patients names each patient and the
files or folders holding their images, so staff can pick the right ones. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from site_agent.dicom_text import person_name

MOST_FILES_NAMED = 3  # a folder with more of a patient's files is summarised as a count
MOST_FOLDERS = 5  # per patient; the others are counted


@dataclass(frozen=True)
class PatientFiles:
    """One patient (as the files identify them) and the files of theirs that were given."""

    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    paths: tuple[Path, ...]

    def who(self) -> str:
        """ "DOE, JANE (ID ER-1)", with the issuer when the files give one."""
        issuer = f", issuer {self.issuer_of_patient_id}" if self.issuer_of_patient_id else ""
        return f"{person_name(self.patient_name)} (ID {self.patient_id or 'not given'}{issuer})"


def by_patient(instances: Iterable[tuple[tuple[str, str, str], Path]]) -> list[PatientFiles]:
    """Group `((patient id, issuer, name), path)` pairs by patient, in the order each patient
    is first met."""
    groups: dict[tuple[str, str, str], list[Path]] = {}
    for key, path in instances:
        groups.setdefault(key, []).append(path)
    return [
        PatientFiles(name, patient_id, issuer, tuple(paths))
        for (patient_id, issuer, name), paths in groups.items()
    ]


def where(paths: Sequence[Path]) -> str:
    """Where these files are, briefly: "/disc/A (120 files), /disc/B/IM1, /disc/B/IM2"; a
    folder with more than `MOST_FILES_NAMED` of them is a count, and past `MOST_FOLDERS`
    folders the rest are counted."""
    folders: dict[Path, list[Path]] = {}
    for path in paths:
        folders.setdefault(path.parent, []).append(path)
    places = [
        f"{folder} ({len(files)} files)"
        if len(files) > MOST_FILES_NAMED
        else ", ".join(map(str, files))
        for folder, files in folders.items()
    ]
    if len(places) > MOST_FOLDERS:
        rest = len(places) - MOST_FOLDERS
        places = [*places[:MOST_FOLDERS], f"and {rest} more folder{'s' if rest > 1 else ''}"]
    return ", ".join(places)


def mixed_patients_message(groups: Sequence[PatientFiles]) -> str:
    """The refusal, on one line: how many patients, each with where their files are, and what
    to do."""
    each = "; ".join(f"{g.who()} in {where(g.paths)}" for g in groups)
    return (
        f"These files belong to {len(groups)} different patients: {each}. One transfer carries "
        "one patient: send each patient's images separately. Nothing was sent."
    )
