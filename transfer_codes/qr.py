"""QR rendering with ``qrcode``: error correction level M, alphanumeric mode where possible.

Text made only of the QR alphanumeric charset (``0-9 A-Z space $%*+-./:``, which includes every
``Capability.to_text()``) is encoded as a single alphanumeric-mode segment: a 65-character
capability then fits version 4 (33 x 33 modules), where byte mode would need version 5. Other
text (for example a lowercase URL) falls back to qrcode's own segmenting, byte mode as UTF-8.
Dark modules on a white background with the standard 4-module quiet zone.
"""

from __future__ import annotations

import io
from typing import Any

import qrcode
import qrcode.constants
import qrcode.util
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathFillImage

ALPHANUMERIC_CHARSET = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
BORDER_MODULES = 4
PNG_PIXELS_PER_MODULE = 10


def is_alphanumeric(text: str) -> bool:
    """True if ``text`` fits QR alphanumeric mode (uppercase letters, digits, `` $%*+-./:``)."""
    return ALPHANUMERIC_CHARSET.issuperset(text)


def _build(text: str) -> Any:
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=PNG_PIXELS_PER_MODULE,
        border=BORDER_MODULES,
    )
    if text and is_alphanumeric(text):
        code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
    else:
        code.add_data(text)
    code.make(fit=True)
    return code


def modules(text: str) -> list[list[bool]]:
    """The module matrix (True = dark) of ``text``'s QR symbol, without the quiet zone."""
    matrix = _build(text).get_matrix()
    return [
        list(row[BORDER_MODULES:-BORDER_MODULES]) for row in matrix[BORDER_MODULES:-BORDER_MODULES]
    ]


def version(text: str) -> int:
    """The QR version (1..40) used for ``text``."""
    return int(_build(text).version)


def render_png(text: str) -> bytes:
    """PNG bytes of the QR for ``text``: 10 pixels per module, 4-module white border."""
    image = _build(text).make_image(image_factory=PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(text: str) -> str:
    """A standalone SVG document (one ``<path>`` on a white ``<rect>``) of the QR for ``text``.

    Coordinates are in modules (``viewBox``), so it scales to any size without blurring.
    """
    image = _build(text).make_image(image_factory=SvgPathFillImage)
    rendered = image.to_string(encoding="unicode")
    return rendered if isinstance(rendered, str) else bytes(rendered).decode("utf-8")
