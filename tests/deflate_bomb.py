"""A deflate bomb for tests: a small Deflated Explicit VR Little Endian file whose data set
inflates to gigabytes."""

from __future__ import annotations

import zlib
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BOMB_BYTES = 3 * 2**30  # what the bomb inflates to


def write_bomb(path: Path, inflated: int = BOMB_BYTES) -> Path:
    """A Deflated Explicit VR Little Endian file whose data set is one OB element of
    `inflated` zero bytes, compressed as it is written (never held whole)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    header = buffer.getvalue()
    # (0009,1010) OB, a private element: tag, VR, 2 reserved bytes, 4-byte length
    element = b"\x09\x00\x10\x10OB\x00\x00" + (inflated - 12).to_bytes(4, "little")
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with path.open("wb") as f:
        f.write(header)
        f.write(deflater.compress(element))
        for _ in range((inflated - 12) // len(zeros)):
            f.write(deflater.compress(zeros))
        f.write(deflater.compress(bytes((inflated - 12) % len(zeros))))
        f.write(deflater.flush())
    return path
