"""Which presentation contexts to ask a PACS for, and how each image then goes. Pure, no I/O.

A PACS accepts one transfer syntax per presentation context (PS3.8 9.3.3.2), so each (SOP
class, transfer syntax) in the study gets a context of its own: an image goes in the format it
was sent whenever the PACS takes it. Many PACS refuse JPEG 2000, JPEG-LS, JPEG lossless, RLE or
deflate, so each SOP class that comes in such a format also gets one context offering Explicit,
then Implicit VR Little Endian: an image whose own format is refused is decompressed into the
syntax the PACS chose there. pynetdicom proposes at most 128 contexts (odd ids 1-255): the
study's own formats come first and must all fit; the uncompressed offers fill what is left, in
SOP class UID order, and a SOP class left without one cannot fall back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydicom.uid import UID

from receiving_site import errors
from receiving_site.staging import StagedObject
from receiving_site.transcode import UNCOMPRESSED, can_decompress
from site_agent.dicom_text import how_many_images

MAX_CONTEXTS = 128
_ADVICE = (
    "Nothing was stored. Ask the PACS administrators to accept this format for this system, or "
    "deliver into a folder with --out."
)

Pair = tuple[str, str]  # (SOP class UID, transfer syntax UID)


@dataclass(frozen=True)
class Offer:
    """The presentation contexts to propose: (SOP class, transfer syntaxes) in order, and the
    SOP classes also offered uncompressed."""

    contexts: tuple[tuple[str, tuple[str, ...]], ...]
    uncompressed: frozenset[str]

    def routes(self, staged: list[StagedObject], accepted: set[Pair]) -> dict[int, str]:
        """For each image (by manifest index) whose own format the PACS refused, the
        uncompressed syntax to convert it to (Explicit VR preferred); the others go as they
        are. `accepted` holds the (SOP class, transfer syntax) of each accepted context.
        Raises `PacsRefused`, naming the formats, if any image can go neither way."""
        convert: dict[int, str] = {}
        refused: list[StagedObject] = []
        for item in staged:
            sop, syntax = item.entry.sop_class_uid, item.entry.transfer_syntax_uid
            if (sop, syntax) in accepted:
                continue
            usable = [u for u in UNCOMPRESSED if (sop, u) in accepted]
            if can_decompress(syntax) and usable:
                convert[item.entry.index] = usable[0]
            else:
                refused.append(item)
        if refused:
            raise errors.PacsRefused(self.refusal(refused, len(staged)))
        return convert

    def refusal(self, refused: list[StagedObject], total: int) -> str:
        """Why nothing was stored when the PACS takes `refused` in no format offered."""
        tried = all(
            can_decompress(item.entry.transfer_syntax_uid)
            and item.entry.sop_class_uid in self.uncompressed
            for item in refused
        )
        return refused_formats(refused, total, tried_uncompressed=tried)


def offer(staged: Iterable[StagedObject]) -> Offer:
    """The contexts for a study. Raises `PacsRefused` if its own formats need more than one
    association allows."""
    pairs = sorted({(s.entry.sop_class_uid, s.entry.transfer_syntax_uid) for s in staged})
    if len(pairs) > MAX_CONTEXTS:
        raise errors.PacsRefused("This study has more kinds of images than one association allows.")
    compressed = sorted({sop for sop, syntax in pairs if can_decompress(syntax)})
    fallback = compressed[: MAX_CONTEXTS - len(pairs)]
    contexts: list[tuple[str, tuple[str, ...]]] = [(sop, (syntax,)) for sop, syntax in pairs]
    contexts += [(sop, UNCOMPRESSED) for sop in fallback]
    return Offer(tuple(contexts), frozenset(fallback))


def name(pair: Pair) -> str:
    """A format as staff and PACS administrators name it, e.g. "CT Image Storage in JPEG 2000
    Image Compression" (pydicom's names; the UID itself when pydicom does not know it)."""
    sop_class, syntax = pair
    return f"{UID(sop_class).name} in {UID(syntax).name}"


def _listed(items: Iterable[StagedObject]) -> tuple[int, str]:
    counts = Counter((s.entry.sop_class_uid, s.entry.transfer_syntax_uid) for s in items)
    listed = "; ".join(
        f"{name(pair)} ({how_many_images(count)})" for pair, count in sorted(counts.items())
    )
    return sum(counts.values()), listed


def refused_formats(
    refused: list[StagedObject], total: int, *, tried_uncompressed: bool = False
) -> str:
    """Why nothing was stored: the PACS takes these images neither as sent nor (when it was
    asked, `tried_uncompressed`) uncompressed."""
    count, listed = _listed(refused)
    either = (
        " Decompressing them would not help: it does not take these kinds of images "
        "uncompressed either."
        if tried_uncompressed
        else ""
    )
    return (
        f"The PACS does not accept {count} of the {total} images in the format they were sent: "
        f"{listed}.{either} {_ADVICE}"
    )


def undecodable(
    converting: list[StagedObject], total: int, failed: StagedObject, reason: str
) -> str:
    """Why nothing was stored: the PACS takes `converting` only uncompressed, and `failed`
    (one of them) does not decode."""
    count, listed = _listed(converting)
    return (
        f"The PACS does not accept {count} of the {total} images in the format they were sent: "
        f"{listed}. It takes them uncompressed, but image {failed.entry.index + 1} could not be "
        f"decompressed ({reason}). {_ADVICE}"
    )


def decompressed_note(decompressed: Mapping[str, int], total: int) -> str:
    """e.g. "12 of the 240 images were decompressed because the PACS does not accept JPEG 2000
    Image Compression."; empty when none was. `decompressed` counts images by the transfer
    syntax UID they were sent in."""
    count = sum(decompressed.values())
    if not count:
        return ""
    named = sorted((-n, UID(syntax).name) for syntax, n in decompressed.items() if n)
    if len(named) == 1:
        refused = named[0][1]
    else:  # the most frequent first
        refused = " or ".join(f"{label} ({-negative})" for negative, label in named)
    verb = "was" if count == 1 else "were"
    return (
        f"{count} of the {total} images {verb} decompressed because the PACS does not accept "
        f"{refused}."
    )
