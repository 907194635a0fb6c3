"""The preview's series table: each series of the sealed study summary (description, modality,
image count, slice thickness) with the thumbnail of a representative image of it, rendered by
the agent from the staged, verified images as they arrive.

The summary lists series without their UIDs, so each is matched to the staged images' series
by its description and modality (the sender took both from the images), in the sender's order
(by series number); a series with no verified image yet shows the placeholder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pydicom

from receiving_site import state, thumbnails
from receiving_site.console.imports import Import
from receiving_site.preview import series_line
from receiving_site.staging import StagedObject
from transfer_codes.manifest import SeriesSummary

FOLDER = "thumbnails"


@dataclass(frozen=True)
class Row:
    number: int  # 1-based, in the summary's order: the thumbnail's address
    line: str  # "AXIAL 1MM, CT, 240 images, 1 mm slices"
    summary: SeriesSummary
    has_images: bool  # a verified image of it is staged: its thumbnail can be rendered


@dataclass(frozen=True)
class _Group:
    uid: str
    number: int | None
    description: str
    modality: str
    first: int  # the lowest index staged, the sender's order among equal numbers
    members: tuple[StagedObject, ...]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _group(uid: str, members: list[StagedObject]) -> _Group:
    ordered = tuple(sorted(members, key=lambda m: m.entry.index))
    try:
        ds = pydicom.dcmread(ordered[0].path, stop_before_pixels=True)
        number = int(ds.get("SeriesNumber")) if ds.get("SeriesNumber") is not None else None
        description, modality = str(ds.get("SeriesDescription", "")), str(ds.get("Modality", ""))
    except (OSError, ValueError, TypeError, pydicom.errors.InvalidDicomError):
        number, description, modality = None, "", ""
    return _Group(uid, number, description, modality, ordered[0].entry.index, ordered)


def _matched(summary: tuple[SeriesSummary, ...], job: Import) -> list[_Group | None]:
    groups = sorted(
        (_group(uid, members) for uid, members in list(job.staged.items()) if members),
        key=lambda g: (g.number is None, g.number or 0, g.first),
    )
    used: set[str] = set()
    found: list[_Group | None] = []
    for series in summary:
        pick = next(
            (
                g
                for g in groups
                if g.uid not in used
                and _key(g.description)[:64] == _key(series.description)
                and _key(g.modality) == _key(series.modality)
            ),
            None,
        )
        if pick is not None:
            used.add(pick.uid)
        found.append(pick)
    return found


def rows(job: Import) -> list[Row]:
    """The series of the preview, in the summary's order."""
    if job.preview is None:
        return []
    summary = job.preview.summary.series
    matched = _matched(summary, job)
    return [
        Row(n, series_line(s), s, group is not None)
        for n, (s, group) in enumerate(zip(summary, matched, strict=True), 1)
    ]


def _representative(job: Import, number: int) -> StagedObject | None:
    """The middle verified image of series `number` (1-based), if one is staged."""
    if job.preview is None or not 1 <= number <= len(job.preview.summary.series):
        return None
    group = _matched(job.preview.summary.series, job)[number - 1]
    if group is None:
        return None
    return group.members[len(group.members) // 2]


def _render_once(item: StagedObject, folder: Path) -> bytes | None:
    """The thumbnail of `item`, rendered once into `folder` (in the staging folder)."""
    path = folder / f"IM{item.entry.index:06d}.png"
    if path.exists():
        return path.read_bytes()
    if not item.path.exists():  # delivered meanwhile: the staged copies are gone
        return None
    picture = thumbnails.render(item.path)
    if picture is not None:
        folder.mkdir(mode=0o700, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(picture)
        partial.replace(path)
    return picture


async def thumbnail(job: Import, number: int, state_dir: Path, limit: asyncio.Semaphore) -> bytes:
    """The PNG for series `number`: its representative image, or the placeholder."""
    if not job.transfer_id:
        return thumbnails.placeholder()
    folder = state.folder(state_dir) / job.transfer_id / FOLDER
    async with limit:
        item = await asyncio.to_thread(_representative, job, number)
        picture = None if item is None else await asyncio.to_thread(_render_once, item, folder)
    return picture or thumbnails.placeholder()
