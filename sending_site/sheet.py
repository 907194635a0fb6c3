"""The transfer sheet: one printable page (A4 or Letter) that travels with the patient.

It carries a box for the hospital's patient label (sticker), the destination, the sending
hospital and its phone number, the code in large grouped monospace type, its QR (the
full-strength capability), what is sent (study description, series and images), the expiry in
local time with its zone, the relay's address, how the transfer is authorized (break-glass in a
frame; a frame saying the family still has to authorize, while it is so), which earlier code a
re-issued sheet replaces, and three lines for the trauma center. The sheet prints no patient
identity of its own: the label box takes the hospital's sticker, and the trauma center sees who
the study is about in its preview.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from sending_site import errors
from site_agent.local_time import local_time
from transfer_codes.qr import render_png

PAPERS = {"a4": "A4", "letter": "Letter"}
MARGIN_MM = 15.0
QR_MM = 66.0
LABEL_MM = (84.0, 40.0)  # fits the common chart labels (up to about 3.25 x 1.5 inches)
GAP_MM = 4.0

SITE_PHONE_ENV = "TRAUMA_RELAY_SITE_PHONE"
_PHONE = re.compile(r"[0-9+()./ -]{3,32}(?: ?(?:ext\.?|x) ?[0-9]{1,6})?", re.IGNORECASE)

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
    relay: str = ""  # the relay's address, as the sending site reaches it
    site_phone: str = ""  # the sending hospital's number; a line to write it on when empty
    study_description: str = ""
    series_count: int = 0
    instance_count: int = 0
    awaiting_authorization: bool = False  # the patient or family has not authorized yet
    reissued: bool = False
    replaces_code_issued_at: float | None = None  # when the code this one replaces was issued


def site_phone(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The sending hospital's phone number for the sheet: `given` (`--site-phone`), else
    TRAUMA_RELAY_SITE_PHONE, else empty. Raises `BadSitePhone` for anything that is not a
    phone number (digits with spaces, + - ( ) . /, and an optional extension)."""
    env = os.environ if environ is None else environ
    value = " ".join((given if given is not None else env.get(SITE_PHONE_ENV, "")).split())
    if not value:
        return ""
    if not _PHONE.fullmatch(value) or sum(ch.isdigit() for ch in value) < 3:
        raise errors.BadSitePhone(
            f"{value!r} is not a phone number. Give the number the trauma center should call, "
            'e.g. --site-phone "+1 555 010 0199 ext 42" (or set TRAUMA_RELAY_SITE_PHONE).'
        )
    return value


def _text(value: str) -> str:
    return value.translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")


def _count(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def study_line(sheet: TransferSheet) -> str:
    """What is sent, e.g. ``CT TRAUMA PANSCAN: 4 series, 1,203 images``."""
    counts = [_count(sheet.series_count, "series", "series")] if sheet.series_count else []
    # No count yet: a study sent while it is still arriving (cut-through).
    counts.append(
        _count(sheet.instance_count, "image", "images")
        if sheet.instance_count
        else "images still arriving"
    )
    return f"{sheet.study_description or 'Imaging study'}: {', '.join(counts)}"


def _authorization(sheet: TransferSheet) -> tuple[str, str] | None:
    """The framed notice about authorization: (heading, sentence), or None when it is done."""
    if sheet.break_glass:
        return (
            "BREAK-GLASS",
            "Authorized by a clinician because nobody could consent at the time. This is "
            "flagged to the trauma center and recorded in the audit trail.",
        )
    if sheet.awaiting_authorization:
        return (
            "The family still has to authorize",
            "The patient or family must approve this transfer on their phone (the link from "
            "the ER screen) before the trauma center can open the images.",
        )
    return None


def _replaces(sheet: TransferSheet) -> str | None:
    if not sheet.reissued:
        return None
    when = sheet.replaces_code_issued_at
    earlier = f"the code issued at {local_time(when)}" if when is not None else "an earlier code"
    return f"This sheet replaces {earlier}: that code no longer works."


class _Page:
    """An fpdf page with the few moves the sheet needs; widths and heights in mm."""

    def __init__(self, paper: str) -> None:
        # Imported here: `push` names `TransferSheet` and starts faster without fpdf, which
        # only a sheet being drawn needs.
        from fpdf import FPDF

        pdf = FPDF(orientation="P", unit="mm", format=PAPERS[paper])
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(False)
        pdf.set_title("Imaging transfer sheet")
        pdf.set_creator("trauma-relay")
        pdf.add_page()
        self.pdf = pdf
        self.width = pdf.w - 2 * MARGIN_MM

    def text(
        self,
        text: str,
        size: float,
        style: str = "",
        *,
        width: float | None = None,
        height: float | None = None,
        font: str = "Helvetica",
        align: str = "L",
        max_lines: int | None = None,
    ) -> None:
        """Wrapped text at the cursor's x; the cursor moves below it, back at that x. With
        `max_lines`, longer text is cut and ends with "..." (display names may run to 200
        characters; the sheet must stay one page)."""
        from fpdf.enums import MethodReturnValue, XPos, YPos

        x = self.pdf.get_x()
        w = width or self.width - (x - MARGIN_MM)
        h = height or size * 0.5
        self.pdf.set_font(font, style, size)
        plain = _text(text)
        if max_lines is not None:
            lines = cast(
                "list[str]",
                self.pdf.multi_cell(
                    w, h, plain, align=align, dry_run=True, output=MethodReturnValue.LINES
                ),
            )
            if len(lines) > max_lines:
                last = lines[max_lines - 1]
                while last and self.pdf.get_string_width(last + "...") > w * 0.97:
                    last = last[:-1]
                plain = "\n".join([*lines[: max_lines - 1], last.rstrip() + "..."])
        self.pdf.multi_cell(w, h, plain, align=align, new_x=XPos.LEFT, new_y=YPos.NEXT)

    def at(self, x: float, y: float) -> None:
        self.pdf.set_xy(x, y)

    def frame(self, x: float, y: float, w: float, h: float, line_mm: float) -> None:
        self.pdf.set_line_width(line_mm)
        self.pdf.rect(x, y, w, h)


def _header(page: _Page, sheet: TransferSheet) -> float:
    """Title, destination, sender and phone on the left, the label box on the right; returns
    the y below both."""
    pdf = page.pdf
    label_w, label_h = LABEL_MM
    left_w = page.width - label_w - GAP_MM
    label_x = MARGIN_MM + left_w + GAP_MM
    page.frame(label_x, MARGIN_MM, label_w, label_h, 0.4)
    page.at(label_x + 2, MARGIN_MM + 1.5)
    page.text("Patient label (stick here)", 8, "I", width=label_w - 4)

    page.at(MARGIN_MM, MARGIN_MM)
    page.text("Imaging transfer sheet", 20, "B", width=left_w, height=9)
    page.text("The patient's images are waiting, encrypted, for:", 10, width=left_w)
    pdf.ln(1)
    page.text(sheet.destination, 16, "B", width=left_w, height=7.5, max_lines=2)
    pdf.ln(1)
    page.text(f"From {sheet.sender}", 11, width=left_w, height=5.5, max_lines=2)
    phone = sheet.site_phone or "_" * 24
    page.text(f"Phone: {phone}", 11, "B", width=left_w, height=5.5)
    return max(pdf.get_y(), MARGIN_MM + label_h) + GAP_MM


def _code_and_qr(page: _Page, sheet: TransferSheet, top: float) -> float:
    """The code across the page, then the QR with the facts beside it; returns the y below."""
    pdf = page.pdf
    page.at(MARGIN_MM, top)
    page.text("Transfer code", 10, "B")
    page.text(sheet.code, 32, "B", font="Courier", height=14, align="C")
    qr_top = pdf.get_y() + 2
    pdf.image(io.BytesIO(render_png(sheet.capability)), x=MARGIN_MM, y=qr_top, w=QR_MM)
    facts_x = MARGIN_MM + QR_MM + GAP_MM + 2
    facts_w = page.width - QR_MM - GAP_MM - 2
    page.at(facts_x, qr_top + 3)
    for heading, value, size, style, lines in (
        ("What is sent", study_line(sheet), 11, "", 3),
        ("Use before", local_time(sheet.expires_at), 14, "B", 1),
        ("Relay", sheet.relay, 11, "", 2),
        ("Transfer", sheet.transfer_id, 10, "", 1),
    ):
        if not value:
            continue
        page.text(heading, 9, "B", width=facts_w)
        page.text(value, size, style, width=facts_w, height=size * 0.5, max_lines=lines)
        page.at(facts_x, pdf.get_y() + 2.5)
    return max(pdf.get_y(), qr_top + QR_MM) + GAP_MM


def _notices(page: _Page, sheet: TransferSheet, top: float) -> float:
    """The framed authorization notice and the line about a replaced code; returns the y."""
    pdf = page.pdf
    y = top
    notice = _authorization(sheet)
    if notice is not None:
        heading, sentence = notice
        page.at(MARGIN_MM + 3, y + 2.5)
        page.text(heading, 13, "B", width=page.width - 6, height=6.5)
        page.text(sentence, 10.5, width=page.width - 6, height=5)
        bottom = pdf.get_y() + 2
        page.frame(MARGIN_MM, y, page.width, bottom - y, 1.0 if sheet.break_glass else 0.5)
        y = bottom + GAP_MM
    replaces = _replaces(sheet)
    if replaces is not None:
        page.at(MARGIN_MM, y)
        page.text(replaces, 11, "B", height=5.5)
        y = pdf.get_y() + GAP_MM
    return y


def render(sheet: TransferSheet, paper: str = "a4") -> bytes:
    """The sheet as PDF bytes. `paper` is ``a4`` or ``letter`` (ValueError otherwise, and if
    the content would not fit on one page)."""
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {sorted(PAPERS)}, not {paper!r}")
    page = _Page(paper)
    y = _notices(page, sheet, _code_and_qr(page, sheet, _header(page, sheet)))
    call = f" ({sheet.site_phone})" if sheet.site_phone else ""
    page.at(MARGIN_MM, y)
    page.text("At the trauma center", 12, "B", height=6.5)
    for instruction in (
        "1. Run trauma-relay redeem and type the code above, or scan the QR code.",
        "2. Check the preview against the patient in front of you, then import into your PACS.",
        f"3. If the code is refused, call the sending hospital{call}: it can issue a new code "
        "at once.",
    ):
        page.text(instruction, 10.5, height=5.5)
    page.pdf.ln(GAP_MM)
    page.text(
        "Treat this sheet like a key: whoever has the code can take these images until they "
        "are taken or expire.",
        9,
        height=4.5,
    )
    if page.pdf.get_y() > page.pdf.h - MARGIN_MM:
        raise ValueError(f"the transfer sheet does not fit on one {paper} page")
    return bytes(page.pdf.output())
