"""QR capabilities: text form, parsing, and QR rendering decoded by a real QR reader.

SVG check: no SVG rasterizer is available in the test environment (no cairosvg, and shelling out
to ImageMagick or Chromium does not belong in a unit test), so the test parses the SVG as XML,
paints its ``<path>`` geometry onto a PIL image with a tiny rasterizer for the absolute
M/H/V/L/Z commands qrcode emits (anything else fails the test), then (1) compares the painted
modules with qrcode's own module matrix and with the modules sampled from the PNG, and
(2) decodes the painted image with zxing-cpp back to the same Capability.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
import qrcode
import qrcode.constants
import qrcode.util
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from transfer_codes import base32, qr
from transfer_codes.capability import Capability
from transfer_codes.errors import (
    CapabilityFormatError,
    CapabilityLengthError,
    TransferCodeError,
    UnknownCapabilityField,
    UnknownCapabilityVersion,
)
from transfer_codes.tokens import new_transfer_id

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
SVG_NS = "{http://www.w3.org/2000/svg}"

transfer_ids = st.text(alphabet=ALPHABET, min_size=24, max_size=24)
capabilities = st.builds(
    Capability, transfer_id=transfer_ids, secret=st.binary(min_size=20, max_size=20)
)


def fixed_capability() -> Capability:
    return Capability(transfer_id="0123456789ABCDEFGHJKMNPQ", secret=bytes(range(20)))


# --- text form --------------------------------------------------------------------------------


def test_text_form_is_pinned() -> None:
    assert fixed_capability().to_text() == (
        "TR1:T:0123456789ABCDEFGHJKMNPQ:K:000G40R40M30E209185GR38E1W8124GK"
    )
    assert base32.decode("000G40R40M30E209185GR38E1W8124GK") == bytes(range(20))


@given(capabilities)
def test_text_round_trip_and_charset(cap: Capability) -> None:
    text = cap.to_text()
    assert len(text) == 65
    assert set(text) <= QR_ALPHANUMERIC
    assert re.fullmatch(f"TR1:T:[{ALPHABET}]{{24}}:K:[{ALPHABET}]{{32}}", text)
    assert Capability.parse(text) == cap
    assert Capability.parse("  " + text.lower() + "\n") == cap


def test_generate_is_random_and_bound_to_the_transfer() -> None:
    transfer_id = new_transfer_id()
    drawn = [Capability.generate(transfer_id) for _ in range(50)]
    assert {cap.transfer_id for cap in drawn} == {transfer_id}
    assert len({cap.secret for cap in drawn}) == 50
    assert all(len(cap.secret) == 20 for cap in drawn)


def test_repr_hides_the_secret() -> None:
    cap = fixed_capability()
    shown = repr(cap)
    assert cap.transfer_id in shown
    assert cap.to_text().split(":")[-1] not in shown
    assert repr(cap.secret) not in shown


@pytest.mark.parametrize(
    ("transfer_id", "secret"),
    [
        ("0123456789ABCDEFGHJKMNP", bytes(20)),
        ("0123456789abcdefghjkmnpq", bytes(20)),
        ("0123456789ABCDEFGHJKMNPQ", bytes(19)),
        ("0123456789ABCDEFGHJKMNPQ", bytes(21)),
    ],
)
def test_constructor_validates(transfer_id: str, secret: bytes) -> None:
    with pytest.raises(ValueError, match="must be"):
        Capability(transfer_id=transfer_id, secret=secret)


GOOD_ID = "0123456789ABCDEFGHJKMNPQ"
GOOD_SECRET = "000G40R40M30E209185GR38E1W8124GK"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (f"TR2:T:{GOOD_ID}:K:{GOOD_SECRET}", UnknownCapabilityVersion),
        (f"TR10:T:{GOOD_ID}:K:{GOOD_SECRET}", UnknownCapabilityVersion),
        (f"XX1:T:{GOOD_ID}:K:{GOOD_SECRET}", CapabilityFormatError),
        ("https://example.org/transfer", CapabilityFormatError),
        ("", CapabilityFormatError),
        (f"TR1:T:{GOOD_ID}:K:{GOOD_SECRET}:X:1", UnknownCapabilityField),
        (f"TR1:T:{GOOD_ID}:S:{GOOD_SECRET}", UnknownCapabilityField),
        (f"TR1:T:{GOOD_ID}:K:{GOOD_SECRET[:-1]}", CapabilityLengthError),
        (f"TR1:T:{GOOD_ID}:K:{GOOD_SECRET}0", CapabilityLengthError),
        (f"TR1:T:{GOOD_ID[:-1]}:K:{GOOD_SECRET}", CapabilityLengthError),
        (f"TR1:T:{GOOD_ID}:K", CapabilityLengthError),
        (f"TR1:T:{GOOD_ID}", CapabilityFormatError),
        (f"TR1:K:{GOOD_SECRET}:T:{GOOD_ID}", CapabilityFormatError),
        (f"TR1:T:{GOOD_ID}:T:{GOOD_ID}", CapabilityFormatError),
        (f"TR1:T:{GOOD_ID}:K:{GOOD_SECRET[:-1]}U", CapabilityFormatError),
        (f"TR1:T:{GOOD_ID[:-1]}*:K:{GOOD_SECRET}", CapabilityFormatError),
        (f"TR1::{GOOD_ID}:K:{GOOD_SECRET}", UnknownCapabilityField),
    ],
)
def test_parse_errors(text: str, error: type[CapabilityFormatError]) -> None:
    with pytest.raises(error) as raised:
        Capability.parse(text)
    assert type(raised.value) is error
    assert isinstance(raised.value, TransferCodeError)
    assert "type the 16-character code instead" in str(raised.value)


def test_parse_folds_confusables_to_the_canonical_id() -> None:
    text = f"TR1:T:{GOOD_ID.replace('0', 'O').replace('1', 'I')}:K:{GOOD_SECRET}"
    assert Capability.parse(text) == fixed_capability()


# --- QR rendering -----------------------------------------------------------------------------


def decode_all(image: Image.Image) -> list[zxingcpp.Barcode]:
    found = zxingcpp.read_barcodes(image)
    assert all(barcode.format == zxingcpp.BarcodeFormat.QRCode for barcode in found)
    return list(found)


def extra(barcode: zxingcpp.Barcode) -> dict[str, object]:
    info = barcode.extra
    assert isinstance(info, dict)
    return info


def test_png_round_trip_through_a_qr_reader() -> None:
    for cap in [fixed_capability(), Capability.generate(new_transfer_id())]:
        png = qr.render_png(cap.to_text())
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        found = decode_all(Image.open(io.BytesIO(png)))
        assert len(found) == 1
        assert Capability.parse(found[0].text) == cap
        assert found[0].text == cap.to_text()
        assert extra(found[0])["ECLevel"] == "M"


def test_capability_qr_uses_alphanumeric_mode() -> None:
    """A 65-character payload fits version 4-M only in alphanumeric mode (capacity 90 there,
    62 in byte mode, which would need version 5). The decoder reports the version it read."""
    text = Capability.generate(new_transfer_id()).to_text()
    found = decode_all(Image.open(io.BytesIO(qr.render_png(text))))
    assert extra(found[0])["Version"] == "4"
    assert qr.version(text) == 4
    # Control: the same text forced into byte mode needs version 5, so the check can fail.
    byte_mode = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    byte_mode.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_8BIT_BYTE))
    byte_mode.make(fit=True)
    assert byte_mode.version == 5


def test_non_alphanumeric_text_still_renders() -> None:
    url = "https://relay.example.org/authorize/abc?x=1"
    assert not qr.is_alphanumeric(url)
    found = decode_all(Image.open(io.BytesIO(qr.render_png(url))))
    assert [barcode.text for barcode in found] == [url]


def png_modules(png: bytes, size: int) -> list[list[bool]]:
    image = Image.open(io.BytesIO(png)).convert("L")
    scale = qr.PNG_PIXELS_PER_MODULE
    border = qr.BORDER_MODULES
    return [
        [
            image.getpixel(((border + x) * scale + scale // 2, (border + y) * scale + scale // 2))
            == 0
            for x in range(size)
        ]
        for y in range(size)
    ]


_PATH_TOKEN = re.compile(r"([A-Za-z])([^A-Za-z]*)")


def rasterize_svg(svg: str, scale: int) -> tuple[Image.Image, int]:
    """Paint the SVG's filled rect background and path squares. Returns image and viewBox size."""
    root = ET.fromstring(svg)  # noqa: S314 (our own renderer's output, not untrusted input)
    assert root.tag == f"{SVG_NS}svg"
    min_x, min_y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert (min_x, min_y) == (0, 0)
    assert width == height
    size = int(width)
    image = Image.new("L", (size * scale, size * scale), 128)  # grey: unpainted shows up
    draw = ImageDraw.Draw(image)
    rects = root.findall(f"{SVG_NS}rect")
    paths = root.findall(f"{SVG_NS}path")
    assert len(rects) == 1
    assert len(paths) == 1
    assert rects[0].attrib["fill"] == "white"
    assert rects[0].attrib["width"] == rects[0].attrib["height"] == "100%"
    draw.rectangle((0, 0, size * scale, size * scale), fill=255)
    polygon: list[tuple[float, float]] = []
    x = y = 0.0
    for command, arguments in _PATH_TOKEN.findall(paths[0].attrib["d"]):
        numbers = [float(n) for n in re.split(r"[ ,]+", arguments.strip()) if n]
        if command == "M":
            x, y = numbers
            polygon = [(x, y)]
        elif command == "L":
            x, y = numbers
            polygon.append((x, y))
        elif command == "H":
            (x,) = numbers
            polygon.append((x, y))
        elif command == "V":
            (y,) = numbers
            polygon.append((x, y))
        elif command in "Zz":
            assert not numbers
            draw.polygon([(px * scale, py * scale) for px, py in polygon], fill=0)
            polygon = []
        else:
            raise AssertionError(f"unexpected SVG path command {command!r}")
    assert not polygon
    return image, size


def test_svg_is_well_formed_and_encodes_the_same_modules_as_the_png() -> None:
    cap = Capability.generate(new_transfer_id())
    text = cap.to_text()
    svg = qr.render_svg(text)
    expected = qr.modules(text)
    size = len(expected)
    assert size == 33  # version 4
    scale = 10
    image, view_size = rasterize_svg(svg, scale=scale)
    border = qr.BORDER_MODULES
    assert view_size == size + 2 * border

    def dark(col: int, row: int) -> bool:
        value = image.getpixel((col * scale + scale // 2, row * scale + scale // 2))
        assert value in (0, 255)  # painted either way, never left grey
        return value == 0

    painted = [[dark(border + col, border + row) for col in range(size)] for row in range(size)]
    assert painted == expected
    assert not any(dark(i, j) for i in range(view_size) for j in range(border))  # quiet zone
    assert png_modules(qr.render_png(text), size) == expected


def test_svg_round_trip_through_a_qr_reader() -> None:
    cap = Capability.generate(new_transfer_id())
    image, _ = rasterize_svg(qr.render_svg(cap.to_text()), scale=8)
    found = decode_all(image)
    assert len(found) == 1
    assert Capability.parse(found[0].text) == cap


def test_module_matrix_differs_between_capabilities() -> None:
    """Guards the matrix comparison above against comparing something constant."""
    first = qr.modules(Capability.generate(new_transfer_id()).to_text())
    second = qr.modules(Capability.generate(new_transfer_id()).to_text())
    assert first != second
