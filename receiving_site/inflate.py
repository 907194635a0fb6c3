"""Staged images are read only after a bound: a Deflated Explicit VR Little Endian file is
inflated whole by pydicom, so a small file from a sending site can claim gigabytes (a deflate
bomb: ~1 MB grows past 2 GB). `check` inflates it first in bounded steps, counting
(`site_agent.inflation`), and refuses it once it passes its ceiling, before anything else reads
it. The ceiling is tied to the file's own size (`site_agent.inflation.ceiling`).
"""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from receiving_site import errors
from site_agent.inflation import ceiling, inflates_past

__all__ = ["ceiling", "check", "read"]

PREAMBLE_AND_PREFIX = 132  # 128-byte preamble + "DICM"
GROUP_LENGTH_ELEMENT = 12  # (0002,0000) UL: tag, VR, length, value


def check(path: Path, position: int) -> None:
    """Raise `ImageTooLarge` if the staged file at `path` (image `position`, 1-based, for the
    message) is deflated and inflates past its ceiling. Other files pass untouched."""
    meta = read_file_meta_info(path)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    start = PREAMBLE_AND_PREFIX + GROUP_LENGTH_ELEMENT + int(meta.FileMetaInformationGroupLength)
    size = path.stat().st_size
    limit = ceiling(size)
    with path.open("rb") as f:
        f.seek(start)
        if inflates_past(f, limit):
            raise errors.ImageTooLarge(
                f"Image {position} is deflated and inflates to more than "
                f"{limit // 2**20:,} MB from a file of {max(1, size // 2**10):,} KB, "
                "more than any image should; it was not opened and nothing was stored. "
                "Ask the sending hospital to send the study again uncompressed."
            )


def read(path: Path, position: int, *, stop_before_pixels: bool = False) -> Dataset:
    """`pydicom.dcmread` of a staged file, after `check`."""
    check(path, position)
    return dcmread(path, stop_before_pixels=stop_before_pixels)
