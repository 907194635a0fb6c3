"""The elements `reconcile.coerce` writes, as pydicom encoded them, kept for the next image of
the same import (`transcode` splices them in instead of coercing and encoding again).

The images of one study usually carry the same outside identity and get the same local one,
so coercion writes the same elements (the Original Attributes Sequence, the identity, the
marks) into each, and encoding them was most of the time spent filing an image under the
local record. What coercion writes follows from the attributes it reads (`reconcile.ATTRIBUTES`)
and the coercion's `reconcile.fingerprint` alone; their encoding also from the transfer
syntax's encoding (the character set is one of the attributes). So the key is exactly that:
the fingerprint, the encoding, and each of those attributes as it lies in the file (tag, VR,
length, value bytes), and an image whose attributes differ in any byte gets its own entry.
Only attributes pydicom left unparsed (`RawDataElement`), or parsed into text, make a key: a
sequence of undefined length, which pydicom parses as it reads, is coerced and encoded every
time.

Kept per process, as `functools.lru_cache` would (a few entries: one per import running).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from receiving_site import reconcile
from receiving_site.reconcile import Coercion

# The tags of every attribute coercion reads or writes.
TAGS = frozenset(Tag(keyword) for keyword in reconcile.ATTRIBUTES)
MAX_KEPT = 16  # imports at once, each with an identity or two; a few hundred bytes each

Key = tuple[object, ...]
Coded = Mapping[BaseTag, bytes]  # every element in `TAGS` the coerced data set has, encoded

_kept: dict[Key, Coded] = {}
_lock = threading.Lock()


def key(
    coercion: Coercion,
    read: Mapping[BaseTag, DataElement | RawDataElement],
    encoding: tuple[bool | None, bool | None],
) -> Key | None:
    """What determines the encoded elements `coercion` writes into a data set read as `read`
    (tag to element, as pydicom read it) in `encoding` (implicit VR, little endian); None
    when that cannot be told from the file's bytes (an attribute pydicom parsed as it read)
    or the coercion would not apply (`coerce` says why)."""
    try:
        writes = reconcile.fingerprint(coercion)
    except ValueError:
        return None
    found: list[object] = []
    for tag in sorted(TAGS):
        element = read.get(tag)
        if element is None:
            found.append(None)
        elif isinstance(element, RawDataElement) and isinstance(element.value, bytes):
            found.append((element.VR, element.length, element.value))
        elif isinstance(element, DataElement) and _text(element.value) is not None:
            # pydicom parses the Specific Character Set as it reads, to decode the rest
            found.append((element.VR, element.is_undefined_length, _text(element.value)))
        else:
            return None
    return (writes, encoding, *found)


def _text(value: object) -> object:
    """`value` as a key if it is text (one string or several), else None."""
    if type(value) is str:
        return value
    if type(value) is MultiValue and all(type(v) is str for v in value):
        return tuple(value)
    return None


def recall(key: Key) -> Coded | None:
    """The elements kept for `key`, if any."""
    with _lock:
        return _kept.get(key)


def keep(key: Key, coded: Coded) -> None:
    """Keep `coded` for `key`, forgetting the oldest beyond `MAX_KEPT`."""
    with _lock:
        _kept[key] = dict(coded)
        while len(_kept) > MAX_KEPT:
            del _kept[next(iter(_kept))]


def forget() -> None:
    """Forget every kept element (for tests)."""
    with _lock:
        _kept.clear()
