"""A deflated staged image is inflated in bounded steps before pydicom reads it: a small file
that claims gigabytes is refused with a sentence instead of taking the machine's memory (a
process limited to 1.5 GB of address space shows it), and real deflated images pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from receiving_site import errors, inflate, thumbnails

BOMB_BYTES = 3 * 2**30  # what the bomb inflates to


def write_bomb(path: Path, inflated: int = BOMB_BYTES) -> Path:
    """A Deflated Explicit VR Little Endian file whose data set is one OB element of
    `inflated` zero bytes, compressed as it is written (never held whole)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
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


def test_a_deflate_bomb_is_refused_with_a_sentence(tmp_path: Path) -> None:
    bomb = write_bomb(tmp_path / "bomb.dcm")
    assert bomb.stat().st_size < 5 * 2**20
    with pytest.raises(errors.ImageTooLarge) as refused:
        inflate.check(bomb, 7)
    message = str(refused.value)
    ceiling = inflate.ceiling(bomb.stat().st_size) // 2**20
    assert message.startswith(f"Image 7 is deflated and inflates to more than {ceiling:,} MB")
    assert "nothing was stored" in message
    assert thumbnails.render(bomb) is None  # no picture either


def test_the_bomb_is_refused_within_a_memory_limit(tmp_path: Path) -> None:
    bomb = write_bomb(tmp_path / "bomb.dcm")
    probe = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        limit = 1536 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from receiving_site import errors, inflate
        try:
            inflate.read(Path({str(bomb)!r}), 1, stop_before_pixels=True)
        except errors.ImageTooLarge:
            print("refused")
        except MemoryError:
            print("out of memory")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=300
    )
    assert run.stdout.strip() == "refused", run.stderr


def test_real_deflated_images_pass(tmp_path: Path) -> None:
    path = Path(str(get_testdata_file("image_dfl.dcm")))
    inflate.check(path, 1)
    ds = inflate.read(path, 1)
    assert ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert int(ds.Rows) > 0


def test_other_syntaxes_are_not_inflated(tmp_path: Path) -> None:
    path = Path(str(get_testdata_file("CT_small.dcm")))
    inflate.check(path, 1)  # explicit little endian: untouched
    assert inflate.read(path, 1, stop_before_pixels=True).Modality == "CT"
