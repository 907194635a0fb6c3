"""Sealed objects: known answer, round trips, bounded buffering, and every way to tamper."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

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
from transfer_codes.sealed import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    ObjectOpener,
    ObjectSealer,
    open_object,
    seal_object,
    sealed_size,
)

DATA_KEY = bytes(range(32))
TRANSFER = "0123456789ABCDEFGHJKMNPQ"
OTHER_TRANSFER = "QPNMKJHGFEDCBA9876543210"
INDEX = 7
VECTOR_PLAINTEXT = b"trauma-relay sealed object test vector"
VECTOR_HEX = (
    "5452534f010100000010000000073031323334353637383941424344454647484a4b4d4e50513fb2"
    "cbac9f8eda0fe1fc447e53566c18939950d1abfae1ebc608c1b375c54a182cc0d28ee7bbc400594c"
    "a40ce46508e326f3ca5251dbb90073306cdca0b06bb67eb9011ef5d7cc1e4c976bf85351d3d6db3c"
    "bb71e128"
)


def header(
    chunk_size: int,
    index: int = INDEX,
    transfer: bytes = TRANSFER.encode(),
    magic: bytes = b"TRSO",
    version: int = 1,
    algorithm: int = 1,
) -> bytes:
    return (
        magic
        + bytes([version, algorithm])
        + chunk_size.to_bytes(4, "big")
        + index.to_bytes(4, "big")
        + transfer
    )


def build(chunks: list[tuple[bytes, int, bool]], chunk_size: int, index: int = INDEX) -> bytes:
    """A sealed object written by hand from the spec: (plaintext, counter, final) per chunk."""
    head = header(chunk_size, index)
    aead = AESGCM(object_key(DATA_KEY, TRANSFER, index))
    out = [head]
    for plaintext, counter, final in chunks:
        nonce = b"\x00\x00\x00" + counter.to_bytes(8, "big") + bytes([final])
        out.append(aead.encrypt(nonce, plaintext, head))
    return b"".join(out)


def split_chunks(sealed: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    record = chunk_size + 16
    body = sealed[HEADER_SIZE:]
    return sealed[:HEADER_SIZE], [body[i : i + record] for i in range(0, len(body), record)]


def open_in_pieces(data: bytes, cuts: list[int], index: int = INDEX) -> bytes:
    opener = ObjectOpener(DATA_KEY, TRANSFER, index)
    out = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        out.append(opener.feed(data[previous:cut]))
        previous = cut
    out.append(opener.finish())
    return b"".join(out)


class OpenedCleanly(Exception):
    """Stands for "no error" in ``error_of``."""


def error_of(data: bytes, index: int = INDEX, transfer: str = TRANSFER) -> type[Exception]:
    """The error opening ``data`` raises, checked to be the same whole and byte by byte."""
    errors: list[type[Exception]] = []
    for piece in (len(data) or 1, 1):
        opener = ObjectOpener(DATA_KEY, transfer, index)
        try:
            for start in range(0, len(data), piece):
                opener.feed(data[start : start + piece])
            opener.finish()
        except SealedObjectError as error:
            errors.append(type(error))
        else:
            errors.append(OpenedCleanly)
    assert errors[0] is errors[1], errors
    return errors[0]


# --- format -----------------------------------------------------------------------------------


def test_known_answer_vector() -> None:
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, VECTOR_PLAINTEXT, chunk_size=16)
    assert sealed.hex() == VECTOR_HEX
    assert open_object(DATA_KEY, TRANSFER, INDEX, bytes.fromhex(VECTOR_HEX)) == VECTOR_PLAINTEXT


def test_vector_matches_the_spec_built_by_hand() -> None:
    """Header layout, per-object key, nonce = 3 zero bytes || u64 counter || final flag."""
    expected = build(
        [(VECTOR_PLAINTEXT[0:16], 0, False), (VECTOR_PLAINTEXT[16:32], 1, False),
         (VECTOR_PLAINTEXT[32:], 2, True)],
        chunk_size=16,
    )  # fmt: skip
    assert expected.hex() == VECTOR_HEX
    assert expected[:HEADER_SIZE] == (
        b"TRSO\x01\x01\x00\x00\x00\x10\x00\x00\x00\x07" + TRANSFER.encode()
    )


def test_sealing_is_deterministic_and_split_independent() -> None:
    plaintext = random.Random(5).randbytes(1000)
    whole = seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, chunk_size=64)
    assert seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, chunk_size=64) == whole
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size=64)
    pieces = [sealer.feed(plaintext[i : i + 7]) for i in range(0, 1000, 7)]
    assert b"".join(pieces) + sealer.finish() == whole
    assert seal_object(DATA_KEY, TRANSFER, INDEX + 1, plaintext, chunk_size=64) != whole


def test_header_comes_with_the_first_output() -> None:
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size=16)
    assert sealer.feed(b"") == header(16)
    assert sealer.feed(b"x" * 16) == b""  # may still be the final chunk
    assert len(sealer.feed(b"y")) == 32
    assert len(sealer.finish()) == 17


def test_header_comes_with_finish_when_nothing_was_fed() -> None:
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size=16)
    assert sealer.finish() == build([(b"", 0, True)], chunk_size=16)


@pytest.mark.parametrize(
    ("length", "chunk_size"),
    [(0, 1), (0, 16), (1, 16), (15, 16), (16, 16), (17, 16), (32, 16), (33, 16), (100, 1),
     (10**6, DEFAULT_CHUNK_SIZE), (3 * DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE)],
)  # fmt: skip
def test_sealed_size_is_exact(length: int, chunk_size: int) -> None:
    plaintext = bytes(length)
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, chunk_size)
    assert len(sealed) == sealed_size(length, chunk_size)
    assert open_object(DATA_KEY, TRANSFER, INDEX, sealed) == plaintext


def test_full_final_chunk_is_not_followed_by_an_empty_one() -> None:
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, b"a" * 32, chunk_size=16)
    assert sealed == build([(b"a" * 16, 0, False), (b"a" * 16, 1, True)], chunk_size=16)


def test_empty_plaintext() -> None:
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, b"")
    assert len(sealed) == HEADER_SIZE + 16
    assert open_object(DATA_KEY, TRANSFER, INDEX, sealed) == b""


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_CHUNK_SIZE + 1])
def test_chunk_size_limits(chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size)
    with pytest.raises(ValueError, match="chunk size"):
        sealed_size(10, chunk_size)


def test_largest_chunk_size_round_trips() -> None:
    plaintext = random.Random(9).randbytes(MAX_CHUNK_SIZE + 5)
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, MAX_CHUNK_SIZE)
    assert open_in_pieces(sealed, [100, MAX_CHUNK_SIZE + 50]) == plaintext


def test_use_after_finish_is_a_programming_error() -> None:
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX)
    sealed = sealer.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        sealer.feed(b"x")
    opener = ObjectOpener(DATA_KEY, TRANSFER, INDEX)
    opener.feed(sealed)
    opener.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        opener.feed(b"")


def test_accepts_bytearray_and_memoryview() -> None:
    plaintext = bytearray(b"z" * 100)
    sealed = seal_object(DATA_KEY, TRANSFER, INDEX, bytes(plaintext), 16)
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, 16)
    assert sealer.feed(memoryview(plaintext)) + sealer.finish() == sealed
    opener = ObjectOpener(DATA_KEY, TRANSFER, INDEX)
    assert opener.feed(bytearray(sealed)) + opener.finish() == plaintext


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=2000),
    chunk_size=st.integers(min_value=1, max_value=300),
    seal_cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
    open_cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_round_trip_with_random_split_points(
    plaintext: bytes, chunk_size: int, seal_cuts: list[int], open_cuts: list[int]
) -> None:
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size)
    pieces = []
    previous = 0
    for cut in [*sorted(c for c in seal_cuts if c <= len(plaintext)), len(plaintext)]:
        pieces.append(sealer.feed(plaintext[previous:cut]))
        assert sealer.buffered <= chunk_size
        previous = cut
    pieces.append(sealer.finish())
    sealed = b"".join(pieces)
    assert sealed == seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, chunk_size)
    assert len(sealed) == sealed_size(len(plaintext), chunk_size)

    opener = ObjectOpener(DATA_KEY, TRANSFER, INDEX)
    out = []
    previous = 0
    for cut in [*sorted(c for c in open_cuts if c <= len(sealed)), len(sealed)]:
        out.append(opener.feed(sealed[previous:cut]))
        assert opener.buffered <= max(HEADER_SIZE, chunk_size + 16)
        previous = cut
    out.append(opener.finish())
    assert b"".join(out) == plaintext


# --- tampering: exhaustive --------------------------------------------------------------------


def small_object() -> bytes:
    return seal_object(DATA_KEY, TRANSFER, INDEX, VECTOR_PLAINTEXT + b"!!", chunk_size=16)


def test_every_flipped_byte_is_caught() -> None:
    sealed = small_object()
    assert len(sealed) == HEADER_SIZE + 40 + 3 * 16
    seen: set[type[Exception]] = set()
    for position in range(len(sealed)):
        for mask in (0x01, 0x80):
            damaged = bytearray(sealed)
            damaged[position] ^= mask
            with pytest.raises(SealedObjectError) as raised:
                open_object(DATA_KEY, TRANSFER, INDEX, bytes(damaged))
            seen.add(type(raised.value))
    assert {HeaderCorrupt, UnsupportedFormatVersion, ChunkAuthenticationFailed} <= seen


def test_every_truncation_is_caught_and_named() -> None:
    sealed = small_object()
    chunk_ends = {HEADER_SIZE + 32, HEADER_SIZE + 64}  # after each non-final chunk
    for length in range(len(sealed)):
        expected = MissingFinalChunk if length in chunk_ends else TruncatedObject
        assert error_of(sealed[:length]) is expected, length


# --- tampering: one constructed case per error ------------------------------------------------


def four_chunks() -> list[bytes]:
    _, chunks = split_chunks(
        seal_object(DATA_KEY, TRANSFER, INDEX, bytes(range(64)), chunk_size=16), 16
    )
    assert len(chunks) == 4
    return chunks


def test_bad_magic_is_header_corrupt() -> None:
    sealed = small_object()
    assert error_of(b"TRSX" + sealed[4:]) is HeaderCorrupt
    assert error_of(b"GIF8") is HeaderCorrupt  # too short, and not even our magic
    assert error_of(b"TRS") is TruncatedObject


def test_zero_chunk_size_is_header_corrupt() -> None:
    assert error_of(header(0) + bytes(16)) is HeaderCorrupt


def test_header_transfer_id_outside_the_alphabet_is_header_corrupt() -> None:
    assert error_of(header(16, transfer=b"\xff" * 24) + bytes(32)) is HeaderCorrupt
    assert error_of(header(16, transfer=b"u" * 24) + bytes(32)) is HeaderCorrupt


@pytest.mark.parametrize(("version", "algorithm"), [(2, 1), (0, 1), (1, 2), (1, 0)])
def test_unknown_version_or_algorithm(version: int, algorithm: int) -> None:
    data = header(16, version=version, algorithm=algorithm) + bytes(32)
    assert error_of(data) is UnsupportedFormatVersion


def test_chunk_size_above_the_cap_is_refused_before_buffering() -> None:
    data = header(MAX_CHUNK_SIZE + 1) + bytes(64)
    assert error_of(data) is ChunkTooLarge
    assert error_of(header(2**32 - 1)) is ChunkTooLarge


def test_object_in_the_wrong_place() -> None:
    sealed = small_object()
    assert error_of(sealed, index=INDEX + 1) is ObjectMisplaced


def test_object_from_another_transfer() -> None:
    sealed = small_object()
    assert error_of(sealed, transfer=OTHER_TRANSFER) is ObjectFromAnotherTransfer


def test_header_rewritten_to_the_expected_place_fails_authentication() -> None:
    """Splicing object 7 into slot 8 by editing its header: the header is authenticated and
    the key differs, so every chunk fails."""
    sealed = small_object()
    assert error_of(header(16, index=INDEX + 1) + sealed[HEADER_SIZE:], index=INDEX + 1) is (
        ChunkAuthenticationFailed
    )


def test_flipped_byte_in_a_middle_chunk() -> None:
    chunks = four_chunks()
    damaged = bytearray(chunks[1])
    damaged[3] ^= 0x40
    assert error_of(header(16) + chunks[0] + bytes(damaged) + chunks[2] + chunks[3]) is (
        ChunkAuthenticationFailed
    )


def test_flipped_byte_in_a_full_final_chunk() -> None:
    chunks = four_chunks()
    damaged = bytearray(chunks[3])
    damaged[-1] ^= 0x01
    assert error_of(header(16) + b"".join(chunks[:3]) + bytes(damaged)) is (
        ChunkAuthenticationFailed
    )


def test_swapped_chunks_are_reordered() -> None:
    c = four_chunks()
    assert error_of(header(16) + c[1] + c[0] + c[2] + c[3]) is ChunkReordered
    assert error_of(header(16) + c[0] + c[2] + c[1] + c[3]) is ChunkReordered


def test_dropped_middle_chunk_is_reported_as_reordered() -> None:
    c = four_chunks()
    assert error_of(header(16) + c[0] + c[2] + c[3]) is ChunkReordered


def test_repeated_chunk() -> None:
    c = four_chunks()
    assert error_of(header(16) + c[0] + c[0] + c[1] + c[2] + c[3]) is ChunkRepeated
    assert error_of(header(16) + c[0] + c[1] + c[2] + c[1] + c[3]) is ChunkRepeated


def test_missing_final_chunk() -> None:
    c = four_chunks()
    assert error_of(header(16) + c[0] + c[1] + c[2]) is MissingFinalChunk


def test_stream_cut_inside_a_chunk_is_truncated() -> None:
    c = four_chunks()
    assert error_of(header(16) + c[0] + c[1][:20]) is TruncatedObject
    assert error_of(header(16) + c[0] + c[1][:5]) is TruncatedObject
    assert error_of(header(16)) is TruncatedObject
    assert error_of(b"") is TruncatedObject
    assert error_of(header(16)[:20]) is TruncatedObject


def test_trailing_data_after_a_full_final_chunk() -> None:
    sealed = header(16) + b"".join(four_chunks())
    assert error_of(sealed + b"\x00") is TrailingData
    assert error_of(sealed + bytes(100)) is TrailingData
    assert error_of(sealed + four_chunks()[3]) is TrailingData  # final chunk repeated


def test_trailing_data_after_a_short_final_chunk() -> None:
    sealed = small_object()  # final chunk carries 8 bytes
    assert error_of(sealed + b"\n") is TrailingData
    assert error_of(sealed + bytes(40)) is TrailingData


def test_two_objects_concatenated() -> None:
    sealed = small_object()
    assert error_of(sealed + sealed) is TrailingData


def test_empty_final_chunk_after_data_is_not_canonical() -> None:
    """Only a faulty sender holding the key could write this; it must still be refused."""
    data = build([(b"a" * 16, 0, False), (b"", 1, True)], chunk_size=16)
    assert error_of(data) is NonCanonicalObject


def test_errors_stick() -> None:
    opener = ObjectOpener(DATA_KEY, TRANSFER, INDEX)
    with pytest.raises(HeaderCorrupt) as first:
        opener.feed(b"NOPE" + bytes(40))
    with pytest.raises(HeaderCorrupt) as again:
        opener.feed(small_object())
    assert again.value is first.value
    with pytest.raises(HeaderCorrupt):
        opener.finish()


def test_plaintext_is_released_chunk_by_chunk_before_the_end() -> None:
    c = four_chunks()
    opener = ObjectOpener(DATA_KEY, TRANSFER, INDEX)
    assert opener.feed(header(16) + c[0]) == b""  # could still be the final chunk
    assert opener.feed(c[1][:1]) == bytes(range(16))
    assert opener.buffered == 1


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=2000),
    chunk_size=st.integers(min_value=1, max_value=300),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_plain_hash_sees_every_byte_once_in_order(
    plaintext: bytes, chunk_size: int, cuts: list[int]
) -> None:
    digest = hashlib.sha256()
    sealer = ObjectSealer(DATA_KEY, TRANSFER, INDEX, chunk_size, plain_hash=digest)
    pieces = []
    previous = 0
    for cut in [*sorted(c for c in cuts if c <= len(plaintext)), len(plaintext)]:
        pieces.append(sealer.feed(plaintext[previous:cut]))
        previous = cut
    pieces.append(sealer.finish())
    assert digest.digest() == hashlib.sha256(plaintext).digest()
    assert b"".join(pieces) == seal_object(DATA_KEY, TRANSFER, INDEX, plaintext, chunk_size)
