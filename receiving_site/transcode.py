"""Rewrite one staged image for the PACS: decompressed for a PACS that refuses its compressed
(or deflated) format, and/or coerced to the trauma center's own patient record
(`receiving_site.reconcile`, when staff gave a local patient ID).

pydicom does all the decoding (`Dataset.decompress`, pydicom 3) with whichever plugins it finds:
pylibjpeg with its libjpeg and OpenJPEG plugins (JPEG, JPEG-LS, JPEG 2000), Pillow, and its own
RLE decoder; nothing here touches a codestream. What the copy keeps and what changes:

- Study, Series and SOP Instance UIDs stay: a change of transfer syntax is not a new image
  (`generate_instance_uid=False`).
- The samples of a lossless format (RLE, JPEG lossless, JPEG-LS lossless, JPEG 2000 lossless)
  are exactly those compressed: YBR_FULL stays YBR_FULL, valid uncompressed, as converting it
  to RGB would round samples, in a copy that does not say it is lossy. Lossy JPEG YCbCr
  (YBR_FULL, YBR_FULL_422) becomes RGB: its decoded samples are no longer subsampled, so
  YBR_FULL_422 would misdescribe them. JPEG 2000's YBR_RCT and YBR_ICT become RGB in OpenJPEG
  itself. Photometric Interpretation and Planar Configuration (0, pixel-interleaved) describe
  the decoded pixels: `decompress` sets both from what its decoder returned.
- Lossy Image Compression is the sender's: pydicom leaves it alone. For JPEG baseline and
  extended and JPEG-LS near-lossless, lossy by definition, and for JPEG 2000 with the
  irreversible colour transform (YBR_ICT), "01" is set where the image does not say so
  already: once lossy compressed, an image must say so (PS3.3 C.7.6.1.1.5), or its
  uncompressed copy would pass for an original. Other JPEG 2000 may be lossless, so there the
  sender's value stands.
- The 128-byte preamble stays zeroed, as staged.
- Deflated Explicit VR Little Endian has no pixel encoding of its own: it is only re-encoded.

Bounded memory: one image at a time, read from its staged file and written beside it (named by
position, like the staged file, never by a received value). A copy that keeps the transfer
syntax (only coerced) reads the data set up to its pixel data, and copies the pixel data
element and what follows it as staged, in blocks. The decoders allocate the whole
image from the size its header declares before finding whether the data fills it, so an image
that declares more than `MAX_DECLARED_BYTES`, or more than `MAX_EXPANSION` times its file, is
refused before decoding (DOMAIN.md: never allocate from a size the peer declares).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomFileLike
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from receiving_site import coded_coercion, errors, file_meta, inflate, reconcile, staged_header
from receiving_site.reconcile import Coercion
from receiving_site.staged_header import StagedHeader
from receiving_site.staging import PREAMBLE, StagedObject

# What a PACS that refuses a compressed format is asked for instead, the first preferred: it
# keeps every element's VR, which Implicit VR leaves to the reader's dictionary.
UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))
# Formats that are lossy whatever the image: its copy says so (Lossy Image Compression "01").
_LOSSY_ONLY = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless}
# Formats that are lossless whatever the image: its copy keeps exactly the compressed samples,
# YCbCr included. (Deflate is lossless too, and never decoded: it is only re-encoded.)
_LOSSLESS = {
    RLELossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
}
# The most uncompressed pixel data an image may declare. pydicom holds a decompressed image about
# twice over (its frames, then them joined) and DICOM cannot encode more than 4 GiB of it; real
# images are far smaller (2,000 frames of 512 x 512 at 16 bits are 1,000 MiB).
MAX_DECLARED_BYTES = 2 * 2**30
# The most an image may declare per byte of its file. No real image compresses this well (RLE
# cannot exceed 64:1; lossless codecs reach a few to one, lossy ones a few hundred), so such a
# header does not describe its data, and decoding it would turn a peer's few kilobytes into
# gigabytes of this machine's memory before the decoder found the data short.
MAX_EXPANSION = 4096
RLE_EXPANSION = 72  # at most 64 for RLE's runs, plus its headers
_REASON_CHARS = 200  # of a decoder's error, in a message staff read
_COPY_BLOCK = 1 << 20  # bytes per read of the pixel data copied as staged
_UNDEFINED = 0xFFFFFFFF  # an element's length when it is undefined (PS3.5 7.1.1)
_HEADER_SIZES = (8, 12)  # bytes before an element's value: implicit or short, long explicit VR
_META_NAMES = (
    ("MediaStorageSOPClassUID", "SOPClassUID"),
    ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
)


def can_decompress(syntax: str) -> bool:
    """Whether an image in `syntax` may be sent uncompressed instead: a compressed or deflated
    transfer syntax pydicom knows (whether this image then decodes is found by trying)."""
    uid = UID(syntax)
    return uid.is_transfer_syntax and (uid.is_compressed or uid.is_deflated)


def wire_path(item: StagedObject) -> Path:
    """Where the rewritten copy of `item` is written: beside the staged file."""
    return item.path.with_suffix(".wire")


def rewrite(
    item: StagedObject,
    syntax: str | None = None,
    *,
    coercion: Coercion | None = None,
    header: StagedHeader | None = None,
) -> Path:
    """Write `item` beside its staged file, decompressed into `syntax` (one of `UNCOMPRESSED`;
    None keeps its own) and coerced by `coercion` (None: identity untouched); returns the
    copy's path. `header`, if given, is the staged file's header as `staged_header.read` gave
    it (the identity check read it): a copy that keeps the transfer syntax is made from it
    instead of reading the file's header again; it is used up (its data set is coerced).
    Raises `Undecodable` if pydicom cannot decode it (no decoder for its format, corrupt data)
    or it declares more pixels than may be decoded, `IdentityHeld` if the coerced values
    cannot be written in its character set, and `OSError` if the copy cannot be written."""
    if syntax is not None and syntax not in UNCOMPRESSED:
        raise ValueError(f"{syntax} is not an uncompressed transfer syntax")
    original = UID(item.entry.transfer_syntax_uid)
    with item.path.open("rb") as f:  # an OSError here is this machine's, not the image's
        file_size = os.fstat(f.fileno()).st_size
        kept = syntax is None and not original.is_deflated
        if header is not None and (not kept or header.size != file_size):
            header = None  # read for another file, or not what this copy is made from
        if header is None:  # else checked when the header was read
            inflate.check(item.path, item.entry.index + 1)  # ImageTooLarge before inflating
        if kept:
            return _coerced(item, f, coercion, header)
        try:
            ds = pydicom.dcmread(f)
        except Exception as e:  # a reader can fail in any way on bad data
            raise errors.Undecodable(_reason(e)) from e
    photometric = str(ds.get("PhotometricInterpretation", ""))
    decoding = syntax is not None and original.is_compressed and "PixelData" in ds
    if decoding:
        refuse_oversized(ds, file_size)
        # YBR_FULL_422 cannot stay: decoded, its samples are no longer subsampled.
        as_rgb = original not in _LOSSLESS or photometric == "YBR_FULL_422"
        try:
            ds.decompress(generate_instance_uid=False, as_rgb=as_rgb)
        except Exception as e:  # a decoder can fail in any way (some raise OSError) on bad data
            raise errors.Undecodable(_reason(e)) from e
    if syntax is not None:
        lossy = original in _LOSSY_ONLY or (decoding and photometric == "YBR_ICT")
        if lossy and ds.get("LossyImageCompression") != "01":
            ds.LossyImageCompression = "01"
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    if coercion is not None:
        reconcile.coerce(ds, coercion)
    return _written(item, ds)


def _coerced(
    item: StagedObject, f: BinaryIO, coercion: Coercion | None, header: StagedHeader | None
) -> Path:
    """`rewrite` keeping the transfer syntax, from `f` (the staged file, open): pydicom reads
    the data set up to the pixel data, which is the bulk of an image and which coercion never
    changes, and encodes it coerced; the pixel data element, and whatever follows it, are then
    copied as staged. They are in the same transfer syntax as the header pydicom writes, and
    come after every element coercion writes (groups 0010 and 0400), so the copy is the one a
    full read and write would give, without decoding and re-encoding megabytes per image. Not
    for a deflated file: its data set is one deflate stream. The header's elements that
    coercion left as read are copied as staged too (`_spliced`), and those it writes are
    encoded once per import and identity read (`coded_coercion`), not per image. `header`:
    the file's header as read already (`rewrite`), else it is read here."""
    if header is None:
        try:
            header = staged_header.parse(f)
        except Exception as e:  # a reader can fail in any way on bad data
            raise errors.Undecodable(_reason(e)) from e
    ds, read, tail = header.dataset, header.read, header.pixels_at
    at_pixels = [] if header.pixel_tag is None else [header.pixel_tag]
    end = tail if tail is not None else header.size
    key = None if coercion is None else coded_coercion.key(coercion, read, ds.original_encoding)
    coded = None if key is None else coded_coercion.recall(key)
    if coded is not None:  # this import's coercion, encoded for an image read the same
        _refuse_after_pixels(coded.keys(), at_pixels)
        spliced = _spliced(item, ds, read, f, end, coded)
        if spliced is not None:
            return spliced
    charset = _charset(ds)
    if coercion is not None:
        reconcile.coerce(ds, coercion)
    _refuse_after_pixels(ds.keys(), at_pixels)
    if _charset(ds) == charset:
        encoded: dict[BaseTag, bytes] = {}
        spliced = _spliced(item, ds, read, f, end, encoded=encoded)
        if spliced is not None:
            if key is not None:
                coded_coercion.keep(key, encoded)
            return spliced
    if tail is not None:
        f.seek(tail)
    return _written(item, ds, None if tail is None else f)


def _refuse_after_pixels(tags: Iterable[BaseTag], at_pixels: list[int]) -> None:
    """Raise `AssertionError` if any of `tags` (the copy's header) comes at or after the pixel
    data element in `at_pixels` (if any). Never: coercion writes groups 0008, 0010 and 0400
    only. Copying the tail after such an element would put the data set out of tag order."""
    if at_pixels and max(tags, default=0) >= min(at_pixels):
        raise AssertionError("coercion wrote an element after the pixel data")


def _charset(ds: Dataset) -> object:
    """`ds`'s Specific Character Set as written (None when absent)."""
    element = ds.get("SpecificCharacterSet")
    return None if element is None else ds["SpecificCharacterSet"].value


def _written(item: StagedObject, ds: Dataset, tail: BinaryIO | None = None) -> Path:
    """Write `ds` (then the rest of `tail`, as it is, when given) to `wire_path(item)`,
    whole or not at all; returns the path."""
    ds.preamble = b"\x00" * PREAMBLE
    target = wire_path(item)
    with _whole_or_nothing(target) as out:
        ds.save_as(out, enforce_file_format=True)
        if tail is not None:
            shutil.copyfileobj(tail, out, _COPY_BLOCK)
    return target


@contextmanager
def _whole_or_nothing(target: Path) -> Iterator[BinaryIO]:
    """A file to write that becomes `target` when the block ends, or is removed if it raises:
    `OSError` (this machine's disk: the caller says how to continue) as it is, any other
    failure (a value pydicom cannot encode) as `Undecodable`."""
    partial = target.with_suffix(".wire-part")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, target)
    except OSError:
        raise
    except Exception as e:
        raise errors.Undecodable(_reason(e)) from e
    finally:
        partial.unlink(missing_ok=True)


def _spans(
    ds: Dataset, read: Mapping[BaseTag, DataElement | RawDataElement], end: int
) -> dict[BaseTag, tuple[int, int]] | None:
    """Where in the staged file each element of `ds` still as pydicom read it (`read`: the
    same object, never converted) lies: from the end of the element before it to the end of
    its value, both as pydicom gave them (`value_tell`, `length`); the last must end at `end`
    (the pixel data, or the end of the file). Only an element header (8 or 12 bytes, PS3.5
    7.1) may lie between two values, so a file laid out otherwise (out of tag order, a
    duplicated tag pydicom kept once) gives None; an element after one of undefined length is
    left to pydicom."""
    spans: dict[BaseTag, tuple[int, int]] = {}
    previous: int | None = None
    for tag in sorted(read, key=int):
        element = read[tag]
        if not isinstance(element, RawDataElement) or element.length == _UNDEFINED:
            previous = None
            continue
        start, value_end = element.value_tell, element.value_tell + element.length
        if previous is not None:
            if not _HEADER_SIZES[0] <= start - previous <= _HEADER_SIZES[1]:
                return None
            now: object = ds.get_item(tag)
            if now is element:
                spans[tag] = (previous, value_end)
        previous = value_end
    if previous is not None and previous != end:
        return None
    return spans


def _spliced(
    item: StagedObject,
    ds: Dataset,
    read: Mapping[BaseTag, DataElement | RawDataElement],
    f: BinaryIO,
    end: int,
    coded: coded_coercion.Coded | None = None,
    *,
    encoded: dict[BaseTag, bytes] | None = None,
) -> Path | None:
    """`_written` for `_coerced`, the same bytes, with less of pydicom: the file meta and the
    elements coercion added, changed or read are encoded by pydicom's own functions (as
    `dcmwrite` and `write_dataset` do), and every run of elements left as read is copied from
    `f` (see `_spans`) with the pixel data after them. Written per image, pydicom's encoding of
    the ~100 elements of a CT header took more time than everything else in the rewrite. Returns
    None, having written nothing, for a file this does not cover: then `_written`.

    `coded`, for `ds` as read (not coerced): the elements coercion writes into it, encoded
    (`coded_coercion`), written in their place instead of those of `ds` in
    `coded_coercion.TAGS`. Otherwise, with `encoded` given, `ds` is coerced, and those elements
    are encoded one by one and put into `encoded` as written."""
    meta: FileMetaDataset | None = getattr(ds, "file_meta", None)
    syntax = None if meta is None else meta.get("TransferSyntaxUID")
    if meta is None or syntax is None or not UID(syntax).is_transfer_syntax:
        return None
    encoding = (UID(syntax).is_implicit_VR, UID(syntax).is_little_endian)
    if UID(syntax).is_deflated or ds.original_encoding != encoding:
        return None  # pydicom's writer re-encodes such a data set
    if any(tag >> 16 in (0, 2) for tag in ds.keys()):  # noqa: SIM118 (iterating converts)
        return None  # pydicom's writer refuses it: `_written` says why
    # As `dcmwrite(enforce_file_format=True)`: the file meta names the data set's instance.
    for in_meta, in_ds in _META_NAMES:
        value, named = ds.get(in_ds), meta.get(in_meta)
        if named is None or (value and value != named):
            setattr(meta, in_meta, value)
    charset = ds.get("SpecificCharacterSet", default_encoding)  # as `write_dataset`
    spans = _spans(ds, read, end)
    if spans is None:
        return None
    tags = set(ds.keys())
    if coded is not None:
        tags = (tags - coded_coercion.TAGS) | coded.keys()
    target = wire_path(item)
    with _whole_or_nothing(target) as out:
        fp = DicomFileLike(out)
        fp.is_implicit_VR, fp.is_little_endian = encoding
        fp.write(b"\x00" * PREAMBLE + b"DICM")
        file_meta.write(fp, meta)  # as `write_file_meta_info(fp, meta, enforce_standard=True)`
        run: list[int] = []  # [start, end) in `f` of elements to copy next
        for tag in sorted(tags, key=int):
            if tag.element == 0 and tag.group > 6:
                continue  # as `write_dataset`: retired group lengths are not written
            span = None if tag in coded_coercion.TAGS else spans.get(tag)
            if span is not None and run and run[1] == span[0]:
                run[1] = span[1]
                continue
            _copy(f, out, run)
            if span is not None:
                run = list(span)
                continue
            run = []
            if coded is not None and tag in coded:
                out.write(coded[tag])
            elif encoded is not None and tag in coded_coercion.TAGS:
                encoded[tag] = _encoded(ds.get_item(tag), encoding, charset)
                out.write(encoded[tag])
            else:
                write_data_element(fp, ds.get_item(tag), charset)
        size = os.fstat(f.fileno()).st_size
        if run and run[1] == end:
            run[1] = size  # the pixel data and what follows it, in the same copy
        else:
            _copy(f, out, run)
            run = [end, size] if end < size else []
        _copy(f, out, run)
    return target


def _encoded(
    element: DataElement | RawDataElement, encoding: tuple[bool, bool], charset: object
) -> bytes:
    """`element` as `write_data_element` writes it in `encoding` (implicit VR, little endian)
    and `charset` (a Specific Character Set value)."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = encoding
    write_data_element(buffer, element, charset)  # type: ignore[arg-type]
    return buffer.getvalue()


def _copy(f: BinaryIO, out: BinaryIO, span: list[int]) -> None:
    """Copy bytes [start, end) of `f` to `out` (nothing for an empty `span`)."""
    if not span:
        return
    f.seek(span[0])
    left = span[1] - span[0]
    while left > 0:
        block = f.read(min(left, _COPY_BLOCK))
        if not block:
            raise errors.Undecodable("the image ends before the length its elements declare")
        out.write(block)
        left -= len(block)


def refuse_oversized(ds: Dataset, file_size: int) -> None:
    """Raise `Undecodable` if the pixel data `ds` declares (Rows x Columns x Number of Frames x
    Samples per Pixel x bytes per sample) exceeds `MAX_DECLARED_BYTES`, or `MAX_EXPANSION`
    times `file_size` (`RLE_EXPANSION` for RLE, which cannot compress more: a run of at most
    128 bytes takes 2). Declared values that are missing or not numbers are left to the
    decoder, which needs them and refuses without them."""
    try:
        factors = [
            int(ds.Rows),
            int(ds.Columns),
            int(ds.get("NumberOfFrames") or 1),
            int(ds.get("SamplesPerPixel") or 1),
            math.ceil(int(ds.BitsAllocated) / 8),
        ]
    except (AttributeError, TypeError, ValueError):
        return
    declared = math.prod(factors)
    if declared > MAX_DECLARED_BYTES:
        raise errors.Undecodable(
            f"the image declares {_size(declared)} of pixels, more than the "
            f"{_size(MAX_DECLARED_BYTES)} this site decompresses"
        )
    syntax = ds.file_meta.get("TransferSyntaxUID") if "file_meta" in ds.__dict__ else None
    expansion = RLE_EXPANSION if syntax == RLELossless else MAX_EXPANSION
    if declared > expansion * file_size:
        raise errors.Undecodable(
            f"the image declares {_size(declared)} of pixels, more than {expansion} times "
            f"the {_size(file_size)} it was sent in"
        )


def _size(n: int) -> str:
    """e.g. "8 KB", "3,052 MB" (binary units, as a file manager shows them)."""
    if n < 2**20:
        return f"{max(1, round(n / 2**10)):,} KB"
    return f"{round(n / 2**20):,} MB"


def _reason(e: Exception) -> str:
    reason = " ".join(str(e).split()) or type(e).__name__
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 3] + "..."
