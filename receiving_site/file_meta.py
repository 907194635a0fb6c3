"""The file meta of a filed copy (`transcode`), as pydicom's
`write_file_meta_info(enforce_standard=True)` writes it, with less of pydicom per image.

The images of one study carry the same file meta but for their Media Storage SOP Instance
UID, and pydicom's checks and encoding of those few elements took a third of the time spent
filing an image. So the elements before and after the instance UID, as pydicom encoded them,
are kept for the next image whose other meta elements are the same (the key: each element's
tag, VR and value bytes as read, or its value where it was parsed or set); that image's
instance UID and the group length are encoded by pydicom's own functions, and the kept bytes
go around them. An image whose meta differs in any byte, or lacks an instance UID, is written
by pydicom whole (which raises what it raises).

Kept per process, as `functools.lru_cache` would (a few entries: one per import running).
"""

from __future__ import annotations

import threading

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomFileLike
from pydicom.filewriter import write_data_element, write_file_meta_info

GROUP_LENGTH = 0x00020000
INSTANCE = 0x00020003  # Media Storage SOP Instance UID
MAX_KEPT = 16

Key = tuple[object, ...]
_kept: dict[Key, tuple[bytes, bytes]] = {}  # encoded elements before and after the instance
_lock = threading.Lock()


def write(fp: DicomFileLike, meta: FileMetaDataset) -> None:
    """Write `meta` to `fp` as `write_file_meta_info(fp, meta, enforce_standard=True)` does."""
    key = _key(meta)
    with _lock:
        kept = None if key is None else _kept.get(key)
    if kept is not None and not meta[INSTANCE].is_empty:  # else pydicom's writer raises
        before, after = kept
        own = _encoded(meta[INSTANCE])
        fp.write(_group_length(len(before) + len(own) + len(after)) + before + own + after)
        return
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, meta, enforce_standard=True)
    written = buffer.getvalue()
    fp.write(written)
    if key is not None:
        _keep(key, meta, written)


def _key(meta: FileMetaDataset) -> Key | None:
    """What the meta's elements but its instance UID are, as they will be encoded (of the
    group length, only its VR: its value is computed); None without an instance UID."""
    found: list[object] = []
    has_instance = False
    for tag in sorted(meta.keys(), key=int):
        element = meta.get_item(tag)
        if tag == INSTANCE:
            has_instance = True
        elif tag == GROUP_LENGTH:
            found.append((tag, element.VR))
        elif isinstance(element, RawDataElement):
            found.append((tag, element.VR, element.length, element.value))
        else:
            found.append((tag, element.VR, repr(element.value)))
    return tuple(found) if has_instance else None


def _keep(key: Key, meta: FileMetaDataset, written: bytes) -> None:
    """Keep what pydicom wrote around the instance UID, if it is laid out as expected: the
    group length, the elements before the instance UID, the instance UID, the rest."""
    length = _group_length(len(written) - len(_group_length(0)))
    before = b"".join(
        _encoded(meta[tag]) for tag in sorted(meta.keys()) if GROUP_LENGTH < tag < INSTANCE
    )
    own = _encoded(meta[INSTANCE])
    start = len(length) + len(before)
    if not written.startswith(length + before) or written[start : start + len(own)] != own:
        return
    with _lock:
        _kept[key] = (before, written[start + len(own) :])
        while len(_kept) > MAX_KEPT:
            del _kept[next(iter(_kept))]


def _group_length(length: int) -> bytes:
    """The File Meta Information Group Length element saying `length` bytes follow it."""
    return _encoded(DataElement(GROUP_LENGTH, "UL", length))


def _encoded(element: DataElement) -> bytes:
    """`element` as `write_data_element` writes it in Explicit VR Little Endian."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, element)
    return buffer.getvalue()


def forget() -> None:
    """Forget every kept encoding (for tests)."""
    with _lock:
        _kept.clear()
