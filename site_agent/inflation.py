"""How far a Deflated Explicit VR Little Endian data set inflates, counted in bounded steps:
pydicom inflates such a data set whole before reading it, so a small file can claim gigabytes
(a deflate bomb: ~1 MB grows past 2 GB). Both agents ask this before pydicom reads a deflated
image from outside: the sending site's inbox and folders, the receiving site's staged images.

The ceiling is tied to the data set's own size and to what an image can be: at most
`MAX_INFLATION` times the compressed bytes (deflate compresses real images a few times, blank
ones at most some hundreds of times) and never past `MAX_INFLATED_BYTES`.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

MAX_INFLATION = 256
MAX_INFLATED_BYTES = 2 * 2**30
MIN_CEILING = 64 * 2**20  # a small data set may always inflate this much
STEP = 1 << 20


def ceiling(deflated_size: int) -> int:
    """The most a deflated data set of `deflated_size` bytes may inflate to."""
    return min(MAX_INFLATED_BYTES, max(MIN_CEILING, MAX_INFLATION * deflated_size))


def inflates_past(f: BinaryIO, limit: int) -> bool:
    """Whether the raw deflate stream read from `f` (from its position to its end) inflates to
    more than `limit` bytes, holding at most `STEP` inflated bytes at a time. A stream that is
    not valid deflate is not judged here (False): pydicom's reader says what is wrong with it."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    while block := f.read(STEP):
        pending = block
        while pending:
            try:
                out = inflater.decompress(pending, STEP)
            except zlib.error:
                return False
            inflated += len(out)
            if inflated > limit:
                return True
            pending = inflater.unconsumed_tail
    return False
