"""DICOM values, and counts of images, as staff read them, on either side (the ER's confirmation,
the trauma center's preview). Pure."""

from __future__ import annotations

UNKNOWN = "not given"


def person_name(pn: str) -> str:
    """A DICOM person name as staff read it: "DOE^JANE^^DR" -> "DOE, JANE"; the first
    (alphabetic) group only."""
    parts = pn.split("=", 1)[0].split("^")
    family, given = parts[0].strip(), " ".join(p.strip() for p in parts[1:3] if p.strip())
    return ", ".join(p for p in (family, given) if p) or UNKNOWN


def date(da: str) -> str:
    """A DICOM date "20250101" as "2025-01-01"; anything else as given."""
    da = da.strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return da or UNKNOWN


def how_many_images(count: int) -> str:
    """`count` images as staff read it: "1 image", "240 images" (and "0 images")."""
    return "1 image" if count == 1 else f"{count} images"
