"""The text values of the files that the sealed manifest carries as they are (the patient, the
study), checked for control characters before anything is sent. Pure: instances in, a refusal
out.

pydicom decodes each value by the file's Specific Character Set (0008,0005), ISO 2022 escape
sequences included (a Japanese name switches to JIS X 0208 and back with ESC $ B ... ESC ( B):
whatever control character is left after that is one DICOM does not allow in these values
(PS3.5 6.1, 6.2), and the manifest refuses it. Such a file is refused here, naming the file,
the attribute and the value, rather than half-way through the upload.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sending_site import errors
from site_agent.terminal_text import shown

if TYPE_CHECKING:
    from sending_site.collect import Instance

# Instance attribute: the attribute as the DICOM standard names it.
CHECKED = {
    "patient_name": "Patient's Name (0010,0010)",
    "patient_id": "Patient ID (0010,0020)",
    "issuer_of_patient_id": "Issuer of Patient ID (0010,0021)",
    "patient_birth_date": "Patient's Birth Date (0010,0030)",
    "patient_sex": "Patient's Sex (0010,0040)",
    "study_date": "Study Date (0008,0020)",
    "study_description": "Study Description (0008,1030)",
    "accession_number": "Accession Number (0008,0050)",
    "modality": "Modality (0008,0060)",
}
MOST_TOLD = 3  # distinct values told; the rest are counted


def _controls(value: str) -> str:
    return "".join(c for c in value if unicodedata.category(c) in ("Cc", "Cs"))


def _files(paths: Sequence[Path]) -> str:
    more = len(paths) - 1
    return paths[0].name + (f" and {more} other file{'s' if more > 1 else ''}" if more else "")


def check(instances: Sequence[Instance]) -> None:
    """Raise `ControlCharacterInValue` if a value in `CHECKED` of any of `instances` holds a
    control character once decoded; the sentence names each such attribute and value (at most
    `MOST_TOLD`), the files that hold it, and what to do."""
    found: dict[tuple[str, str, str], list[Path]] = {}
    for instance in instances:
        for attribute, words in CHECKED.items():
            value = str(getattr(instance, attribute))
            if _controls(value):
                key = (words, value, instance.specific_character_set)
                found.setdefault(key, []).append(instance.path)
    if not found:
        return
    told = []
    for (words, value, character_set), paths in list(found.items())[:MOST_TOLD]:
        controls = ", ".join(dict.fromkeys(shown(c) for c in _controls(value)))
        sentence = (
            f'{_files(paths)}: the {words} is "{shown(value)}", with a control character '
            f"({controls}) that DICOM does not allow in it"
        )
        if "\x1b" in value:
            declared = character_set or "none (the default repertoire)"
            sentence += (
                " (an ESC may only begin an ISO 2022 escape sequence to a character set that "
                "the file's Specific Character Set (0008,0005) declares, and this one does not; "
                f"the file declares {declared})"
            )
        told.append(sentence + ".")
    more = len(found) - MOST_TOLD
    if more > 0:
        told.append(f"And {more} more such value{'s' if more > 1 else ''}.")
    raise errors.ControlCharacterInValue(
        " ".join(told) + " Nothing was sent. Have the value corrected where the study was "
        "made (at the scanner, or in the PACS it came from), export the study again and push "
        "that."
    )
