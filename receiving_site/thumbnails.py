"""Small pictures of a series, so trauma-center staff recognise the study at a glance before it
is imported: rendered by the agent from a decrypted, verified staged image, never by the
browser, and kept in the agent's state folder.

- The pixel values go through the modality LUT (CT: Hounsfield units), then the image's own
  window (Window Center/Width) when it gives one, else for CT a soft-tissue window (40/400 HU),
  else its own range (1st to 99th percentile, so a few hot pixels do not wash it out).
- MONOCHROME1 (white is low) is inverted; colour images are shown as RGB.
- Compressed images are decoded with pydicom's decoders (pylibjpeg for JPEG, JPEG-LS and
  JPEG 2000; RLE built in). Of a multi-frame image, the middle frame is shown.
- Anything that cannot be rendered (no pixel data, no decoder, damaged) gives None: the page
  then shows the plain `placeholder`, never an error.

Never allocates from a declared size alone: pydicom checks Rows x Columns x Frames against the
bytes actually present before it decodes, and images larger than `MAX_PIXELS` are not rendered.
"""

from __future__ import annotations

import io
import logging
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

from receiving_site import inflate, transcode

log = logging.getLogger("receiving_site.thumbnails")

SIZE = 160  # pixels: the longer side of a thumbnail
MAX_PIXELS = 64 * 1024 * 1024  # rows x columns x frames beyond this is not decoded for a picture
SOFT_TISSUE = (40.0, 400.0)  # window center and width, in HU, for CT without its own window


def render(path: Path, size: int = SIZE) -> bytes | None:
    """A PNG of the image in DICOM file `path`, its longer side at most `size` pixels; None if
    it cannot be rendered (the reason is logged, without patient data)."""
    try:
        inflate.check(path, 0)  # a deflate bomb is no picture
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds or int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) == 0:
            return None
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if int(ds.Rows) * int(ds.Columns) * frames > MAX_PIXELS:
            return None
        transcode.refuse_oversized(ds, path.stat().st_size)
        index = frames // 2 if frames > 1 else None
        pixels = ds.pixel_array if index is None else ds.pixel_array[index]
        picture = _picture(ds, pixels)
    except Exception as e:  # any failure to decode shows the placeholder
        log.info("no thumbnail for %s: %s", path.name, type(e).__name__)
        return None
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _picture(ds: Any, pixels: np.ndarray[Any, Any]) -> Image.Image:
    """8-bit grey (windowed) or RGB, from one frame's decoded pixels."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        if photometric.startswith("YBR") and photometric != "YBR_FULL_422":
            from pydicom.pixels.processing import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        return Image.fromarray(_to_bytes(pixels, *_range(pixels)), mode="RGB")
    if pixels.ndim != 2:
        raise ValueError("not a single grey frame")
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:  # a lookup table instead of a window
        values = np.asarray(apply_voi_lut(pixels, ds), dtype=np.float64)
        low, high = _range(values)
    else:
        low, high = _window(ds, values)
    grey = _to_bytes(values, low, high)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, mode="L")


def _window(ds: Any, values: np.ndarray[Any, Any]) -> tuple[float, float]:
    """The (lowest, highest) value shown, black to white."""
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if width > 1:
            return center - width / 2, center + width / 2
    if str(ds.get("Modality", "")).upper() == "CT":
        center, width = SOFT_TISSUE
        return center - width / 2, center + width / 2
    return _range(values)


def _first(value: Any) -> float:
    """A window value, the first of several (DS may be multi-valued)."""
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0]
    return float(value)


def _range(values: np.ndarray[Any, Any]) -> tuple[float, float]:
    low, high = (float(v) for v in np.percentile(values, (1, 99)))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return low, max(high, low + 1)


def _to_bytes(values: np.ndarray[Any, Any], low: float, high: float) -> np.ndarray[Any, Any]:
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low) * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


@cache
def placeholder(size: int = SIZE) -> bytes:
    """A plain grey square with a thin frame: the picture is not there (yet)."""
    image = Image.new("L", (size, size), 0xE6)
    ImageDraw.Draw(image).rectangle((0, 0, size - 1, size - 1), outline=0xB4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


__all__ = ["SIZE", "placeholder", "render"]
