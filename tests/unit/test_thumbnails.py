"""Thumbnails of the trauma console's preview, from pydicom's bundled images: CT (windowed),
MR, MONOCHROME1 (inverted), compressed (JPEG baseline, JPEG 2000, JPEG-LS, RLE) and colour;
whatever cannot be rendered gives None (the page shows the placeholder)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from receiving_site import thumbnails


def _bundled(name: str) -> Path:
    found = get_testdata_file(name)
    assert isinstance(found, str), name
    return Path(found)


def _picture(png: bytes | None) -> Image.Image:
    assert png is not None
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("CT_small.dcm", "L"),  # CT, uncompressed, with its own window
        ("MR_small.dcm", "L"),
        ("MR_small_RLE.dcm", "L"),
        ("MR_small_jp2klossless.dcm", "L"),  # JPEG 2000 (pylibjpeg-openjpeg)
        ("MR_small_jpeg_ls_lossless.dcm", "L"),  # JPEG-LS (pylibjpeg-libjpeg)
        ("693_J2KI.dcm", "L"),  # CT in JPEG 2000
        ("JPGExtended.dcm", "L"),  # JPEG extended, 12 bits
        ("SC_rgb_jpeg_dcmtk.dcm", "RGB"),  # JPEG baseline, YBR_FULL
        ("SC_rgb_rle.dcm", "RGB"),
    ],
)
def test_bundled_images_render_as_small_pngs(name: str, mode: str) -> None:
    image = _picture(thumbnails.render(_bundled(name)))
    assert image.mode == mode
    assert max(image.size) <= thumbnails.SIZE
    assert min(image.size) >= 16
    values = np.asarray(image)
    assert values.std() > 5, "a flat picture: the window or the decoding is wrong"


def test_a_larger_image_is_scaled_down_keeping_its_shape(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_bundled("CT_small.dcm"))  # 128 x 128
    big = np.kron(ds.pixel_array, np.ones((4, 2), dtype=ds.pixel_array.dtype))  # 512 x 256
    ds.Rows, ds.Columns = big.shape
    ds.PixelData = big.tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    assert _picture(thumbnails.render(path)).size == (80, 160)


def _ct(tmp_path: Path, name: str, **values: object) -> Path:
    ds = pydicom.dcmread(_bundled("CT_small.dcm"))
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    plain = np.asarray(_picture(thumbnails.render(_ct(tmp_path, "m2.dcm"))), dtype=int)
    inverted = _ct(tmp_path, "m1.dcm", PhotometricInterpretation="MONOCHROME1")
    assert (np.asarray(_picture(thumbnails.render(inverted)), dtype=int) == 255 - plain).all()


def _clipped(path: Path, low: float, high: float) -> None:
    """Values at or below `low` HU are black, at or above `high` white."""
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    values = np.asarray(_picture(thumbnails.render(path)))
    assert values.shape == hu.shape
    assert (hu <= low - 5).any()
    assert (hu >= high + 5).any()
    assert (values[hu <= low - 5] <= 2).all()
    assert (values[hu >= high + 5] >= 253).all()


def test_ct_without_a_window_gets_a_soft_tissue_window(tmp_path: Path) -> None:
    path = _ct(tmp_path, "nowindow.dcm")
    assert "WindowCenter" not in pydicom.dcmread(path)
    center, width = thumbnails.SOFT_TISSUE
    _clipped(path, center - width / 2, center + width / 2)


def test_ct_with_its_own_window_is_shown_in_it(tmp_path: Path) -> None:
    path = _ct(tmp_path, "bone.dcm", WindowCenter=300, WindowWidth=600)
    _clipped(path, 0, 600)


def test_what_cannot_be_rendered_gives_none_and_the_placeholder_is_a_png(tmp_path: Path) -> None:
    no_pixels = _ct(tmp_path, "nopixels.dcm", PixelData=None)
    not_dicom = tmp_path / "not.dcm"
    not_dicom.write_bytes(b"\x00" * 200)
    assert thumbnails.render(no_pixels) is None
    assert thumbnails.render(not_dicom) is None
    assert thumbnails.render(tmp_path / "missing.dcm") is None
    assert _picture(thumbnails.placeholder()).size == (thumbnails.SIZE, thumbnails.SIZE)
