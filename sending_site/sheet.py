"""The transfer sheet: one printable page (A4 or Letter) that travels with the patient.

It carries the destination, the code in large grouped monospace type, its QR (the full-strength
capability), the expiry and three lines for the trauma center. No patient data is printed: the
code is the key, and the trauma center sees who the study is about in its preview.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from transfer_codes.qr import render_png

PAPERS = {"a4": "A4", "letter": "Letter"}
MARGIN_MM = 18.0
QR_MM = 70.0

INSTRUCTIONS = (
    "1. Run trauma-relay redeem and type the code above, or scan the QR code.",
    "2. Check the preview against the patient in front of you, then import into your PACS.",
    "3. If the code is refused, call the sending hospital: it can issue a new code at once.",
)

# The PDF core fonts cover Latin-1 only; keep typographic punctuation readable.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"})


@dataclass(frozen=True)
class TransferSheet:
    transfer_id: str
    destination: str  # the trauma center's display name
    sender: str  # the sending hospital's display name
    code: str  # grouped, XXXX-XXXX-XXXX-XXXX
    capability: str  # what the QR carries
    expires_at: float  # seconds since the epoch
    break_glass: bool = False


def _text(value: str) -> str:
    return value.translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")


def expiry_text(epoch: float) -> str:
    """The expiry in the machine's local time with its zone, e.g. ``2027-01-15 08:00 UTC``."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def render(sheet: TransferSheet, paper: str = "a4") -> bytes:
    """The sheet as PDF bytes. `paper` is ``a4`` or ``letter`` (ValueError otherwise)."""
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {sorted(PAPERS)}, not {paper!r}")
    pdf = FPDF(orientation="P", unit="mm", format=PAPERS[paper])
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(False)
    pdf.set_title("Imaging transfer sheet")
    pdf.set_creator("trauma-relay")
    pdf.add_page()
    width = pdf.w - 2 * MARGIN_MM

    def line(text: str, size: float, style: str = "", height: float | None = None) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(
            width,
            height or size * 0.5,
            _text(text),
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )

    line("Imaging transfer sheet", 22, "B", 11)
    line("This patient's images are waiting, encrypted, for the trauma center below.", 11)
    pdf.ln(4)
    line("For", 10, "B")
    line(sheet.destination, 18, "B", 9)
    line(f"From {sheet.sender}", 11)
    pdf.ln(5)
    line("Transfer code", 10, "B")
    pdf.set_font("Courier", "B", 34)
    pdf.cell(width, 16, _text(sheet.code), align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.image(io.BytesIO(render_png(sheet.capability)), x=(pdf.w - QR_MM) / 2, w=QR_MM)
    pdf.ln(4)
    line(f"Use before {expiry_text(sheet.expires_at)}", 14, "B", 8)
    if sheet.break_glass:
        line("Authorized by a clinician (break-glass): nobody could consent at the time.", 11, "B")
    pdf.ln(4)
    line("At the trauma center", 12, "B", 7)
    for instruction in INSTRUCTIONS:
        line(instruction, 11, "", 6)
    pdf.ln(6)
    line(
        f"Transfer {sheet.transfer_id}. Treat this sheet like a key: whoever has the code can "
        "take these images until they are taken or expire.",
        9,
        "",
        4.5,
    )
    return bytes(pdf.output())
