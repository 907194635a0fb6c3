"""A deflated image is inflated in bounded steps before pydicom reads it, on both sides: a
staged image at the receiving site, an image the sending site reads (its inbox, its folders). A
small file that claims gigabytes is refused with a sentence instead of taking the machine's
memory (a process limited to 1.5 GB of address space shows it), and real deflated images pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from deflate_bomb import write_bomb
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian

from receiving_site import errors, inflate, thumbnails
from sending_site import collect


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


# Each side's reader of a deflated image, and what it raises for the bomb.
READERS = {
    "receiving": (
        "from receiving_site import errors, inflate",
        "inflate.read(bomb, 1, stop_before_pixels=True)",
        "errors.ImageTooLarge",
    ),
    "sending": ("from sending_site import collect", "collect.read_instance(bomb)", "ValueError"),
}


@pytest.mark.parametrize("side", sorted(READERS))
def test_the_bomb_is_refused_within_a_memory_limit(tmp_path: Path, side: str) -> None:
    bomb = write_bomb(tmp_path / "bomb.dcm")
    imports, read, refusal = READERS[side]
    probe = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        limit = 1536 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        {imports}
        bomb = Path({str(bomb)!r})
        try:
            {read}
        except {refusal}:
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


def test_the_sending_site_refuses_the_bomb_with_a_reason_and_reads_real_deflated_images(
    tmp_path: Path,
) -> None:
    bomb = write_bomb(tmp_path / "bomb.dcm")
    with pytest.raises(ValueError, match=r"^it is deflated and inflates to more than [\d,]+ MB"):
        collect.read_checked(bomb)
    real = Path(str(get_testdata_file("image_dfl.dcm")))
    assert collect.read_checked(real).file_meta.TransferSyntaxUID == (
        DeflatedExplicitVRLittleEndian
    )
