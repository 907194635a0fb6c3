"""Rewrite one staged image for the PACS: decompressed for a PACS that refuses its compressed
(or deflated) format, and/or coerced to the trauma center's own patient record
(`receiving_site.reconcile`, when staff gave a local patient ID).

pydicom does all the decoding (`Dataset.decompress`, pydicom 3) with whichever plugins it finds:
pylibjpeg with its libjpeg and OpenJPEG plugins (JPEG, JPEG-LS, JPEG 2000), Pillow, and its own
RLE decoder; nothing here touches a codestream. What the copy keeps and what changes:

- Study, Series and SOP Instance UIDs stay: a change of transfer syntax is not a new image
  (`generate_instance_uid=False`).
- YCbCr colour (YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT) becomes RGB, and Photometric
  Interpretation and Planar Configuration (0, pixel-interleaved) describe the decoded pixels:
  `decompress` sets both from what its decoder returned.
- Lossy Image Compression is the sender's: pydicom leaves it alone. For JPEG baseline and
  extended, lossy by definition, "01" is set where the image does not say so already: once
  lossy compressed, an image must say so (PS3.3 C.7.6.1.1.5), or its uncompressed copy would
  pass for an original. JPEG 2000 and JPEG-LS may be lossless, so there the sender's value
  stands.
- The 128-byte preamble stays zeroed, as staged.
- Deflated Explicit VR Little Endian has no pixel encoding of its own: it is only re-encoded.

Bounded memory: one image at a time, read from its staged file and written beside it (named by
position, like the staged file, never by a received value).
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

from receiving_site import errors, reconcile
from receiving_site.reconcile import Coercion
from receiving_site.staging import PREAMBLE, StagedObject

# What a PACS that refuses a compressed format is asked for instead, the first preferred: it
# keeps every element's VR, which Implicit VR leaves to the reader's dictionary.
UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
_LOSSY_ONLY = {JPEGBaseline8Bit, JPEGExtended12Bit}
_REASON_CHARS = 200  # of a decoder's error, in a message staff read


def can_decompress(syntax: str) -> bool:
    """Whether an image in `syntax` may be sent uncompressed instead: a compressed or deflated
    transfer syntax pydicom knows (whether this image then decodes is found by trying)."""
    uid = UID(syntax)
    return uid.is_transfer_syntax and (uid.is_compressed or uid.is_deflated)


def wire_path(item: StagedObject) -> Path:
    """Where the rewritten copy of `item` is written: beside the staged file."""
    return item.path.with_suffix(".wire")


def rewrite(
    item: StagedObject, syntax: str | None = None, *, coercion: Coercion | None = None
) -> Path:
    """Write `item` beside its staged file, decompressed into `syntax` (one of `UNCOMPRESSED`;
    None keeps its own) and coerced by `coercion` (None: identity untouched); returns the
    copy's path. Raises `Undecodable` if pydicom cannot decode it (no decoder for its format,
    corrupt data), `IdentityHeld` if the coerced values cannot be written in its character
    set, and `OSError` if the copy cannot be written."""
    if syntax is not None and syntax not in UNCOMPRESSED:
        raise ValueError(f"{syntax} is not an uncompressed transfer syntax")
    original = UID(item.entry.transfer_syntax_uid)
    with item.path.open("rb") as f:  # an OSError here is this machine's, not the image's
        try:
            ds = pydicom.dcmread(f)
            if syntax is not None and original.is_compressed and "PixelData" in ds:
                ds.decompress(generate_instance_uid=False)
        except Exception as e:  # a decoder can fail in any way (some raise OSError) on bad data
            raise errors.Undecodable(_reason(e)) from e
    if syntax is not None:
        if original in _LOSSY_ONLY and ds.get("LossyImageCompression") != "01":
            ds.LossyImageCompression = "01"
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    if coercion is not None:
        reconcile.coerce(ds, coercion)
    ds.preamble = b"\x00" * PREAMBLE
    target = wire_path(item)
    partial = target.with_suffix(".wire-part")
    try:
        ds.save_as(partial, enforce_file_format=True)
        os.replace(partial, target)
    except OSError:
        raise  # this machine's disk: the caller says how to continue
    except Exception as e:  # a value pydicom cannot encode
        raise errors.Undecodable(_reason(e)) from e
    finally:
        partial.unlink(missing_ok=True)
    return target


def _reason(e: Exception) -> str:
    reason = " ".join(str(e).split()) or type(e).__name__
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 3] + "..."
