"""Fuzz the parsers of outside input in `transfer_codes`: random and mutated codes,
capabilities, phone links and keys, key locks, sealed objects (header and chunks), sealed
notes and manifest records. The property each time: the parser returns, or raises the error
its module documents; never an `IndexError`, `KeyError`, `struct.error`, `UnicodeDecodeError`
or another surprise.

`FUZZ_PROFILE=long` runs many more inputs (`ops/fuzz.sh`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz.profiles import FUZZ
from transfer_codes import base32, manifest, notes, phone, sealed, wire
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode, looks_like_code
from transfer_codes.errors import (
    CapabilityFormatError,
    CodeFormatError,
    KeyLockInvalid,
    ManifestError,
    SealedObjectError,
    UnwrapError,
)
from transfer_codes.keys import KeyLock, manifest_key
from transfer_codes.tokens import is_transfer_id, token_digest

DATA_KEY = bytes(range(32))
TRANSFER = "0123456789ABCDEFGHJKMNPQ"
CODE = RedemptionCode(locator=1000, secret=2**64 + 99).grouped()
CAPABILITY = Capability(TRANSFER, bytes(range(20))).to_text()
SYMBOLS = base32.ALPHABET + "oilOIL -:TtKkr*#ÄÖ٣²\x00\ud800"


T = TypeVar("T")


def attempt(call: Callable[[], T], expected: type[Exception]) -> T | None:
    """What `call` returns, or None if it raised `expected` (with a message to show); any
    other exception fails the test."""
    try:
        return call()
    except expected as e:
        if not str(e):
            raise AssertionError(f"{type(e).__name__} without a message") from e
        return None


@st.composite
def _edited(draw: st.DrawFn, valid: list[Any], pieces: st.SearchStrategy[list[Any]]) -> list[Any]:
    """`valid` with a few edits: pieces replaced, inserted, deleted, or the end cut off."""
    data = list(valid)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        piece = draw(pieces)
        if edit == "replace" and where < len(data):
            data[where : where + len(piece)] = piece
        elif edit == "insert":
            data[where:where] = piece
        elif edit == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        else:
            del data[where:]
    return data


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    return _edited(list(valid), st.lists(st.integers(0, 255), min_size=1, max_size=4)).map(bytes)


def mutated_text(valid: str, symbols: str) -> st.SearchStrategy[str]:
    pieces = st.lists(st.sampled_from(symbols), min_size=1, max_size=3)
    return _edited(list(valid), pieces).map("".join)


# -- codes and capabilities -----------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(), st.text(alphabet=SYMBOLS), mutated_text(CODE, SYMBOLS)))
@example("\ud800" * 16)
@example("0" * 10_000)
def test_code_parsing_raises_only_code_format_errors(text: str) -> None:
    looks_like_code(text)
    code = attempt(lambda: RedemptionCode.parse(text), CodeFormatError)
    if code is not None:
        assert RedemptionCode.parse(code.grouped()) == code


@FUZZ
@given(st.one_of(st.text(), st.text(alphabet=SYMBOLS), mutated_text(CAPABILITY, SYMBOLS)))
@example("TR1:T:" + TRANSFER + ":K:" + "\ud800" * 32)
@example("TR1:T:" + "é" * 24 + ":K:" + "0" * 32)
def test_capability_parsing_raises_only_capability_format_errors(text: str) -> None:
    capability = attempt(lambda: Capability.parse(text), CapabilityFormatError)
    if capability is not None:
        assert Capability.parse(capability.to_text()) == capability


@FUZZ
@given(st.text(), st.text())
def test_tokens_and_transfer_ids_never_raise(token: str, other: str) -> None:
    assert len(token_digest(token)) == 32
    assert isinstance(is_transfer_id(other), bool)


@FUZZ
@given(
    st.one_of(
        st.text(),
        mutated_text("https://relay.example/authorize#" + "A" * 48 + "." + "B" * 43, SYMBOLS),
    )
)
def test_phone_links_and_keys_raise_only_value_error(link: str) -> None:
    parts = attempt(lambda: phone.split_link(link), ValueError)
    if parts is not None:
        assert parts[0]
        attempt(lambda: phone.decode_key(parts[1]), ValueError)


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )


VALID_LOCK = {"salt": "A" * 22 + "==", "verifier": "A" * 43 + "=", "wrapped_key": "A" * 80}


@FUZZ
@given(
    st.one_of(
        _json_values(),
        st.fixed_dictionaries({k: st.one_of(_json_values(), st.text()) for k in VALID_LOCK}),
        st.fixed_dictionaries(
            {k: mutated_text(v, "A=+/-_ \n\ud800é") for k, v in VALID_LOCK.items()}
        ),
    )
)
def test_key_lock_parsing_raises_only_key_lock_invalid(document: Any) -> None:
    attempt(lambda: KeyLock.from_json(document), KeyLockInvalid)


@FUZZ
@given(st.one_of(st.text(), mutated_text("QUJDREVGR0g=", "A=+/-_ \n\ud800é")))
@example("000000000000=")  # surplus padding was taken
@example("QUJ=")  # stray bits in the last symbol were taken
def test_base64_text_raises_only_value_error(text: str) -> None:
    data = attempt(lambda: wire.b64decode_text(text), ValueError)
    if data is not None:
        assert wire.b64encode_text(data) == text


# -- sealed objects -------------------------------------------------------------------------

PLAINTEXT = bytes(range(256)) * 3
VALID_OBJECT = sealed.seal_object(DATA_KEY, TRANSFER, 7, PLAINTEXT, chunk_size=100)


def _open(data: bytes, pieces: list[int]) -> bytes:
    """Open `data`, fed in pieces of the given sizes (the rest at once)."""
    opener = sealed.ObjectOpener(DATA_KEY, TRANSFER, 7)
    out, position = [], 0
    for size in pieces:
        out.append(opener.feed(data[position : position + size]))
        position += size
    out.append(opener.feed(data[position:]))
    return b"".join(out) + opener.finish()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=200).map(lambda b: VALID_OBJECT[: sealed.HEADER_SIZE] + b),
        mutated(VALID_OBJECT),
    ),
    st.lists(st.integers(0, 300), max_size=6),
)
@example(VALID_OBJECT[:4] + b"\x01\x01" + b"\xff" * 8 + b"\xff" * 24, [])
@example(VALID_OBJECT[:14] + "É".encode() * 12, [1, 1, 1])
def test_sealed_objects_raise_only_sealed_object_errors(data: bytes, pieces: list[int]) -> None:
    plaintext = attempt(lambda: _open(data, pieces), SealedObjectError)
    if plaintext is not None:
        assert (data, plaintext) == (VALID_OBJECT, PLAINTEXT)  # nothing else opens


# -- sealed notes and manifest records --------------------------------------------------------


def _seal_authentic(plaintext: bytes, seq: int, final: bool) -> bytes:
    """A manifest record that authenticates, holding any plaintext: what a sender holding the
    data key (a compromised one) could make."""
    aead = AESGCM(manifest_key(DATA_KEY, TRANSFER))
    # The module's own nonce and associated data, so only the plaintext is the fuzzer's.
    return aead.encrypt(manifest._nonce(seq, final), plaintext, manifest._aad(TRANSFER))


SUMMARY_DOCUMENT = {
    "type": "summary",
    "patient_name": "Doe^Jane",
    "patient_id": "P1",
    "issuer_of_patient_id": "",
    "patient_birth_date": "19800101",
    "patient_sex": "F",
    "study_instance_uid": "1.2.3",
    "study_date": "20260101",
    "study_description": "CT",
    "accession_number": "A1",
    "modalities": ["CT"],
    "series_count": 1,
    "instance_count": 1,
    "sending_site": "ER",
    "break_glass": False,
    "series": [{"description": "AX", "modality": "CT", "image_count": 1, "slice_thickness": ""}],
    "study_time": "101010",
    "omitted": [],
    "omitted_count": 0,
}


def _mutated_document(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The document with some fields replaced by arbitrary JSON values or dropped."""
    return st.dictionaries(st.sampled_from(sorted(document)), _json_values(), max_size=4).flatmap(
        lambda changes: st.sets(st.sampled_from(sorted(document)), max_size=2).map(
            lambda dropped: {k: changes.get(k, v) for k, v in document.items() if k not in dropped}
        )
    )


def _plaintexts() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        _json_values().map(lambda v: json.dumps(v).encode()),
        _mutated_document(SUMMARY_DOCUMENT).map(lambda d: json.dumps(d).encode()),
        st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
    )


@FUZZ
@given(_plaintexts(), st.booleans())
@example(b"[" * 100_000 + b"]" * 100_000, False)
@example(b"\xff\xfe", False)
@example(b'{"type": "summary", "series": [{"type": 1}]}', False)
def test_authentic_manifest_records_raise_only_manifest_errors(
    plaintext: bytes, final: bool
) -> None:
    reader = manifest.ManifestReader(DATA_KEY, TRANSFER)
    record = _seal_authentic(plaintext, 0, final)
    if attempt(lambda: reader.add(0, record), ManifestError) is None and reader.next_seq:
        assert reader.summary is not None


@FUZZ
@given(st.integers(0, 3), st.binary(max_size=200))
def test_random_manifest_records_fail_authentication(seq: int, record: bytes) -> None:
    reader = manifest.ManifestReader(DATA_KEY, TRANSFER)
    with pytest.raises(ManifestError):
        reader.add(seq, record)


@FUZZ
@given(_plaintexts())
@example(b"\xff\xfe")
@example(b"not json")
@example(b"[" * 100_000 + b"]" * 100_000)
def test_authentic_notes_raise_only_unwrap_errors(plaintext: bytes) -> None:
    key, aad = bytes(32), b"aad"
    blob = b"\x00" * 12 + AESGCM(key).encrypt(b"\x00" * 12, plaintext, aad)
    document = attempt(lambda: notes.open_json(key, aad, blob, "note"), UnwrapError)
    assert document is None or isinstance(document, dict)


@FUZZ
@given(st.binary(max_size=200))
def test_random_phone_blobs_raise_only_unwrap_errors(blob: bytes) -> None:
    for purpose in (*phone.PURPOSES, "other"):
        with pytest.raises(UnwrapError):
            phone.open_sealed(DATA_KEY, purpose, blob)


def test_the_valid_inputs_parse() -> None:
    """The mutations start from inputs that parse, so the fuzzers explore near real ones."""
    assert RedemptionCode.parse(CODE).locator == 1000
    assert Capability.parse(CAPABILITY).transfer_id == TRANSFER
    assert _open(VALID_OBJECT, [1, 50]) == PLAINTEXT
    reader = manifest.ManifestReader(DATA_KEY, TRANSFER)
    reader.add(0, _seal_authentic(json.dumps(SUMMARY_DOCUMENT).encode(), 0, False))
    assert reader.summary is not None
    assert dataclasses.asdict(reader.summary)["patient_id"] == "P1"
    KeyLock.from_json(VALID_LOCK)
