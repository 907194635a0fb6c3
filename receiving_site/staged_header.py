"""A staged image's header as pydicom reads it, once: checked (`staging.check_header`) and then
filed under the local record (`transcode.rewrite`) from the same read, instead of read again.

The data set is pydicom's read up to the pixel data (`dcmread(stop_before_pixels=True)` reads
the same), with every element left as pydicom read it: the check converts the few values it
compares, then puts back the elements as read, so that filing can still tell which elements
are unchanged and copy them as staged (`transcode._spans`). Where the pixel data element starts
is kept, so that filing copies it without reading the header again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from receiving_site import inflate

# Where `dcmread(stop_before_pixels=True)` stops: Float, Double Float and Pixel Data.
PIXEL_DATA = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


@dataclass(frozen=True)
class StagedHeader:
    """One staged file's header: `dataset` up to the pixel data, `read` each of its elements as
    pydicom read it (by tag), `pixel_tag` and `pixels_at` the pixel data element's tag and byte
    offset (None: the file has none), and `size` the file's size in bytes when read."""

    dataset: Dataset
    read: Mapping[BaseTag, DataElement | RawDataElement]
    pixel_tag: int | None
    pixels_at: int | None
    size: int

    def restore(self) -> None:
        """Put back into `dataset` every element as it was read (values read since are parsed
        copies): filing copies only the elements it finds as read."""
        dataset = self.dataset
        for tag, element in self.read.items():
            if dataset.get_item(tag) is not element:
                dataset[tag] = element


def parse(f: BinaryIO) -> StagedHeader:
    """Read the header of the staged file open as `f` (at its start); pydicom's errors raised
    as they are. Leaves `f` at the pixel data element, if any."""
    at_pixels: list[int] = []

    def stop(tag: BaseTag, vr: str | None, length: int) -> bool:
        if tag in PIXEL_DATA:
            at_pixels.append(tag)  # pydicom rewinds `f` to the start of this element
            return True
        return False

    ds = read_partial(f, stop)
    pixels_at = f.tell() if at_pixels else None
    read = {tag: ds.get_item(tag) for tag in ds.keys()}  # noqa: SIM118 (iterating converts)
    pixel_tag = at_pixels[0] if at_pixels else None
    return StagedHeader(ds, read, pixel_tag, pixels_at, os.fstat(f.fileno()).st_size)


def read(path: Path, position: int) -> StagedHeader:
    """`parse` of the staged file at `path` (image `position`, 1-based, for messages), after
    `inflate.check` (a deflated file is inflated in bounded steps before pydicom reads it)."""
    inflate.check(path, position)
    with path.open("rb") as f:
        return parse(f)
