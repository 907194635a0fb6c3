"""Sealed objects: one DICOM instance (or report) encrypted as a STREAM of AES-256-GCM chunks.

Layout (all integers big-endian)::

    header (38 bytes, the associated data of every chunk)
      0   4  magic b"TRSO"
      4   1  format version = 1
      5   1  algorithm = 1 (AES-256-GCM)
      6   4  chunk size C (plaintext bytes per full chunk), 1 <= C <= MAX_CHUNK_SIZE
     10   4  object index (u32)
     14  24  transfer id (ASCII)
    chunk 0 .. chunk n-1
      ciphertext (C bytes, or fewer for the final chunk) || 16-byte GCM tag

Key: ``object_key(data_key, transfer_id, index)``, unique per object. Nonce of chunk i (12 bytes):
``00 00 00 || i as u64 || final flag`` (0x01 for the last chunk, else 0x00). Every chunk but the
final one carries exactly C plaintext bytes; the final chunk carries 1..C bytes, or 0 bytes only
when the whole plaintext is empty (then it is the only chunk). So a stream has exactly one
encoding, and truncation (no chunk authenticates as final), reordering, repetition and splicing
between objects or transfers (other key, other header) are all caught.

Sealing is deterministic: same key, transfer, index, chunk size and plaintext give the same bytes.
The flip side: **an (transfer, index) pair must never be sealed twice with different
plaintext** (keystream reuse). Senders assign each object its index once and re-send stored
ciphertext, or re-seal the identical plaintext, when resuming.

Opening is push-style and needs at most one encrypted chunk plus the incoming data in memory.
Plaintext returned by ``ObjectOpener.feed`` is authentic chunk by chunk, but the object is known
to be complete only when ``finish()`` returns; discard everything if any call raises.

On an authentication failure (and only then) the opener explains it by trying the same chunk
under nearby counters (``CLASSIFY_WINDOW`` either side) and the other final flag:

* decrypts under an earlier counter -> ``ChunkRepeated``; a later one -> ``ChunkReordered``
* decrypts as non-final where the stream ends -> ``MissingFinalChunk``
* decrypts as final where more data follows, or a prefix of it does (a few trailing bytes, or
  another sealed object's header) -> ``TrailingData``
* stream ends inside a chunk or with a short chunk that does not authenticate ->
  ``TruncatedObject`` (a damaged short final chunk cannot be told apart from a cut one)
* anything else -> ``ChunkAuthenticationFailed``
"""

from __future__ import annotations

import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.errors import (
    ChunkAuthenticationFailed,
    ChunkReordered,
    ChunkRepeated,
    ChunkTooLarge,
    HeaderCorrupt,
    MissingFinalChunk,
    NonCanonicalObject,
    ObjectFromAnotherTransfer,
    ObjectMisplaced,
    SealedObjectError,
    TrailingData,
    TruncatedObject,
    UnsupportedFormatVersion,
)
from transfer_codes.keys import object_key
from transfer_codes.tokens import TRANSFER_ID_LENGTH, is_transfer_id

MAGIC = b"TRSO"
FORMAT_VERSION = 1
ALGORITHM_AES_256_GCM = 1
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 1024 * 1024
TAG_SIZE = 16
CLASSIFY_WINDOW = 64

_HEADER = struct.Struct(f">4sBBII{TRANSFER_ID_LENGTH}s")
HEADER_SIZE = _HEADER.size  # 38
_NONCE_PREFIX = b"\x00\x00\x00"
_COUNTER_LIMIT = 2**64
_FLAG = (b"\x00", b"\x01")
BytesLike = bytes | bytearray | memoryview


class PlainHash(Protocol):
    """What ``ObjectSealer`` feeds the plaintext to (a ``hashlib`` object, say)."""

    def update(self, data: BytesLike, /) -> None: ...


def _nonce(counter: int, final: bool) -> bytes:
    return _NONCE_PREFIX + counter.to_bytes(8, "big") + _FLAG[final]


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be in 1..{MAX_CHUNK_SIZE}")


def encode_header(transfer_id: str, index: int, chunk_size: int) -> bytes:
    """The 38-byte header of a version-1 AES-256-GCM sealed object."""
    _check_chunk_size(chunk_size)
    if not is_transfer_id(transfer_id):
        raise ValueError("transfer_id must be 24 uppercase Crockford base32 symbols")
    return _HEADER.pack(
        MAGIC, FORMAT_VERSION, ALGORITHM_AES_256_GCM, chunk_size, index, transfer_id.encode("ascii")
    )


def sealed_size(plaintext_len: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Exact length in bytes of a sealed object whose plaintext is ``plaintext_len`` bytes."""
    _check_chunk_size(chunk_size)
    if plaintext_len < 0:
        raise ValueError("plaintext length must be >= 0")
    chunks = max(1, -(-plaintext_len // chunk_size))
    return HEADER_SIZE + plaintext_len + chunks * TAG_SIZE


class ObjectSealer:
    """Seals one object incrementally: call ``feed`` any number of times, then ``finish`` once.

    The header comes with the first output. Output concatenated over all calls equals
    ``seal_object`` of the concatenated input. Holds back at most ``chunk_size`` plaintext bytes
    (the last chunk is only known to be final at ``finish``). ValueError for a chunk size outside
    1..MAX_CHUNK_SIZE or a bad transfer id / index; RuntimeError on use after ``finish``.

    With ``plain_hash``, every plaintext byte is also fed to it, once and in order, each chunk
    just before it is encrypted: the chunk is still in the CPU's cache, which makes hashing as
    the data is sealed much cheaper than hashing each piece as it is read.
    """

    def __init__(
        self,
        data_key: bytes,
        transfer_id: str,
        index: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        plain_hash: PlainHash | None = None,
    ) -> None:
        self._header = encode_header(transfer_id, index, chunk_size)
        self._plain_hash = plain_hash
        self._aead = AESGCM(object_key(data_key, transfer_id, index))
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._counter = 0
        self._header_sent = False
        self._finished = False

    @property
    def buffered(self) -> int:
        """Plaintext bytes held back for the next chunk (0..chunk_size)."""
        return len(self._pending)

    def _seal(self, plaintext: BytesLike, final: bool) -> bytes:
        nonce = _nonce(self._counter, final)
        self._counter += 1
        if self._plain_hash is not None:
            self._plain_hash.update(plaintext)
        return self._aead.encrypt(nonce, plaintext, self._header)

    def _start(self) -> list[bytes]:
        if self._finished:
            raise RuntimeError("ObjectSealer used after finish()")
        if self._header_sent:
            return []
        self._header_sent = True
        return [self._header]

    def feed(self, plaintext: BytesLike) -> bytes:
        """Seal what can be sealed so far; returns header and/or complete chunks (maybe b"")."""
        out = self._start()
        view = memoryview(plaintext).cast("B")
        size = self._chunk_size
        pending = self._pending
        # Emit only chunks known not to be final: keep 1..size bytes back.
        full = (len(pending) + len(view) - 1) // size
        if full <= 0:
            pending += view
            return b"".join(out)
        position = 0
        if pending:
            position = size - len(pending)
            pending += view[:position]
            out.append(self._seal(pending, final=False))
            pending.clear()
            full -= 1
        for _ in range(full):
            out.append(self._seal(view[position : position + size], final=False))
            position += size
        pending += view[position:]
        return b"".join(out)

    def finish(self) -> bytes:
        """Seal the final chunk (the held-back bytes); returns it (with the header if unsent)."""
        out = self._start()
        out.append(self._seal(self._pending, final=True))
        self._pending = bytearray()
        self._finished = True
        return b"".join(out)


def seal_object(
    data_key: bytes,
    transfer_id: str,
    index: int,
    plaintext: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """The complete sealed object for ``plaintext`` (deterministic)."""
    sealer = ObjectSealer(data_key, transfer_id, index, chunk_size)
    return sealer.feed(plaintext) + sealer.finish()


class ObjectOpener:
    """Opens one sealed object incrementally: ``feed`` ciphertext pieces, then ``finish`` once.

    Returns plaintext as chunks authenticate. Buffers at most one encrypted chunk (chunk size
    + 16 bytes) between calls. Raises a ``SealedObjectError`` subclass (see the module doc) on
    anything wrong; after that every further call raises the same error.
    """

    def __init__(self, data_key: bytes, transfer_id: str, index: int) -> None:
        self._transfer_id = transfer_id
        self._index = index
        self._aead = AESGCM(object_key(data_key, transfer_id, index))
        self._header = b""  # empty until the whole header has arrived and been checked
        self._record_size = 0  # chunk size from the header + tag, once the header is checked
        self._pending = bytearray()
        self._counter = 0
        self._error: SealedObjectError | None = None
        self._finished = False

    @property
    def buffered(self) -> int:
        """Ciphertext bytes held until more arrive (at most one chunk size + 16, or a partial
        header)."""
        return len(self._pending)

    # -- header ----------------------------------------------------------------------------

    def _parse_header(self, header: bytes) -> None:
        magic, version, algorithm, chunk_size, index, transfer_id = _HEADER.unpack(header)
        if magic != MAGIC:
            raise HeaderCorrupt()
        if version != FORMAT_VERSION or algorithm != ALGORITHM_AES_256_GCM:
            raise UnsupportedFormatVersion()
        if chunk_size == 0:
            raise HeaderCorrupt()
        if chunk_size > MAX_CHUNK_SIZE:
            raise ChunkTooLarge()
        try:
            transfer_text = transfer_id.decode("ascii")
        except UnicodeDecodeError:
            raise HeaderCorrupt() from None
        if not is_transfer_id(transfer_text):
            raise HeaderCorrupt()
        if transfer_text != self._transfer_id:
            raise ObjectFromAnotherTransfer()
        if index != self._index:
            raise ObjectMisplaced()
        self._header = header
        self._record_size = chunk_size + TAG_SIZE

    # -- chunks ----------------------------------------------------------------------------

    def _try(self, record: BytesLike, counter: int, final: bool) -> bytes | None:
        if not 0 <= counter < _COUNTER_LIMIT:
            return None
        try:
            return self._aead.decrypt(_nonce(counter, final), record, self._header)
        except InvalidTag:
            return None

    def _open(self, record: BytesLike, final: bool) -> bytes:
        plaintext = self._try(record, self._counter, final)
        if plaintext is None:
            raise self._diagnose(bytes(record), at_end=final)
        if final and not plaintext and self._counter:
            raise NonCanonicalObject()
        self._counter += 1
        return plaintext

    def _diagnose(self, record: bytes, at_end: bool) -> SealedObjectError:
        """Explain why ``record`` failed to authenticate. Failure path only."""
        counter = self._counter
        if self._try(record, counter, not at_end) is not None:
            return MissingFinalChunk() if at_end else TrailingData()
        for other in range(max(0, counter - CLASSIFY_WINDOW), counter + CLASSIFY_WINDOW + 1):
            if other == counter:
                continue
            if any(self._try(record, other, final) is not None for final in (False, True)):
                return ChunkRepeated() if other < counter else ChunkReordered()
        # A final chunk followed by extra bytes: a few stray bytes, or another sealed object.
        ends = set(range(max(TAG_SIZE, len(record) - CLASSIFY_WINDOW), len(record)))
        start = record.find(MAGIC, TAG_SIZE)
        while start != -1:
            ends.add(start)
            start = record.find(MAGIC, start + 1)
        for end in sorted(ends, reverse=True):
            if self._try(record[:end], counter, True) is not None:
                return TrailingData()
        if at_end and len(record) < self._record_size:
            return TruncatedObject()
        return ChunkAuthenticationFailed()

    # -- public ----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise RuntimeError("ObjectOpener used after finish()")

    def feed(self, ciphertext: BytesLike) -> bytes:
        """Consume ``ciphertext``; returns the plaintext of every chunk now known to be complete
        and non-final (maybe b"")."""
        self._check_usable()
        try:
            return self._feed(memoryview(ciphertext).cast("B"))
        except SealedObjectError as error:
            self._error = error
            raise

    def _feed(self, view: memoryview) -> bytes:
        pending = self._pending
        if not self._header:
            missing = HEADER_SIZE - len(pending)
            pending += view[:missing]
            view = view[missing:]
            if len(pending) < HEADER_SIZE:
                return b""
            self._parse_header(bytes(pending))
            pending.clear()
        size = self._record_size
        out: list[bytes] = []
        # A full record is known to be non-final only once at least one more byte follows it.
        if len(pending) + len(view) <= size:
            pending += view
            return b""
        position = 0
        if pending:
            position = size - len(pending)
            pending += view[:position]
            out.append(self._open(pending, final=False))
            pending.clear()
        while len(view) - position > size:
            out.append(self._open(view[position : position + size], final=False))
            position += size
        pending += view[position:]
        return b"".join(out)

    def finish(self) -> bytes:
        """Authenticate the final chunk and return its plaintext. Raises if the object is
        incomplete, damaged or has extra data."""
        self._check_usable()
        try:
            plaintext = self._finish()
        except SealedObjectError as error:
            self._error = error
            raise
        self._finished = True
        return plaintext

    def _finish(self) -> bytes:
        pending = self._pending
        if not self._header:
            if bytes(pending[: len(MAGIC)]) != MAGIC[: len(pending)]:
                raise HeaderCorrupt()
            raise TruncatedObject()
        if not pending:
            raise MissingFinalChunk() if self._counter else TruncatedObject()
        if len(pending) < TAG_SIZE:
            raise TruncatedObject()
        plaintext = self._open(pending, final=True)
        self._pending = bytearray()
        return plaintext


def open_object(data_key: bytes, transfer_id: str, index: int, sealed: bytes) -> bytes:
    """The plaintext of a complete sealed object, or a ``SealedObjectError`` subclass."""
    opener = ObjectOpener(data_key, transfer_id, index)
    return opener.feed(sealed) + opener.finish()
