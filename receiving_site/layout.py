"""Where each image of a study written to a folder goes: PATIENT/STUDY/SERIES/IMAGE, for example
`DOE_JANE/20250101/S003_CT/IM000012`. Pure: image headers in, relative paths out.

Every component is a DICOM File ID component (PS3.10 8.2: 1 to 8 characters from A-Z, 0-9 and
_), so that a DICOMDIR can list the files and any viewer, on any file system, opens them. A
received value becomes a name only through `component`, which maps it onto that character set
and length: a patient called "../../x" is filed as `X`, never as a path (DOMAIN.md, "Never
build a file path from a UID or any received value"). A name left empty, or already taken by
another patient, study or series in the same folder, falls back to one built from its position
(`PT000001`, `ST000001`, `SE000001`, as DICOM media do).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_COMPONENT = 8  # characters in a File ID component, PS3.10 8.2
_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")


@dataclass(frozen=True)
class Header:
    """What the layout reads from one verified image (values as received, untrusted)."""

    index: int  # the image's position in the transfer
    patient_id: str
    patient_name: str
    study_instance_uid: str
    study_date: str
    series_instance_uid: str
    series_number: str
    modality: str


def component(text: str) -> str:
    """`text` as a File ID component: accents dropped, upper case, every run of other
    characters one `_`, at most 8 characters; empty when nothing is left."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
    return re.sub(r"[^A-Z0-9]+", "_", folded).strip("_")[:MAX_COMPONENT].rstrip("_")


def image_name(index: int) -> str:
    """`IM000012` for the image at `index` (hexadecimal past a million images)."""
    return f"IM{index:06d}" if index < 10**6 else f"{index:08X}"


class _Folder:
    """The names given inside one folder: one per key, never twice."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: dict[str, str] = {}
        self.children: dict[str, _Folder] = {}

    def name(self, key: str, wanted: str) -> str:
        if key not in self.names:
            taken = set(self.names.values())
            number = len(self.names) + 1
            name = wanted
            while not name or name in taken:
                name = f"{self.prefix}{number:0{MAX_COMPONENT - len(self.prefix)}d}"
                number += 1
            if not _COMPONENT.fullmatch(name):
                raise ValueError(f"not a File ID component: {name!r}")
            self.names[key] = name
        return self.names[key]

    def child(self, key: str, prefix: str) -> _Folder:
        return self.children.setdefault(key, _Folder(prefix))


def _series(number: str, modality: str) -> str:
    digits = number.strip()
    if not (digits.isascii() and digits.isdigit()):
        return ""
    return component(f"S{int(digits):03d}_{modality}")


def plan(headers: Sequence[Header]) -> dict[int, PurePosixPath]:
    """The path, relative to the study's folder, of each image by its index."""
    root = _Folder("PT")
    paths: dict[int, PurePosixPath] = {}
    for h in sorted(headers, key=lambda h: h.index):
        patient_key = f"{h.patient_id}\\{h.patient_name}"
        alphabetic = h.patient_name.split("=", 1)[0]
        patient = root.name(patient_key, component(alphabetic) or component(h.patient_id))
        studies = root.child(patient_key, "ST")
        study = studies.name(h.study_instance_uid, component(h.study_date))
        series_folder = studies.child(h.study_instance_uid, "SE")
        series = series_folder.name(h.series_instance_uid, _series(h.series_number, h.modality))
        paths[h.index] = PurePosixPath(patient, study, series, image_name(h.index))
    return paths
