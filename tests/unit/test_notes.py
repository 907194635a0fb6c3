"""`transfer_codes.notes`: the one sealed-JSON format, for transfer notes and phone notes. The
known answers were sealed before the two sealers became one; they pin the bytes of both."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.errors import UnwrapError
from transfer_codes.keys import derive_key
from transfer_codes.notes import open_json, open_note, seal_json, seal_note
from transfer_codes.phone import AAD_PREFIX, open_sealed

DATA_KEY = bytes(range(32))
TRANSFER_ID = "0123456789ABCDEFGHJKMNPQ"
NONCE = bytes(range(100, 112))

# Pinned: a break-glass note (json.dumps defaults) under DATA_KEY for TRANSFER_ID, with NONCE.
KNOWN_NOTE = {"reason": "unconscious, é"}
KNOWN_SEALED_NOTE = bytes.fromhex(
    "6465666768696a6b6c6d6e6f31e5f8531358bd729c4ec1934e6a30ce44cadb126bddb4a3b5c7862264f097a0e3"
    "0353d2332d35c702353de23a6069c550"
)
# Pinned in tests/unit/test_phone_link.py too: what relay/pages/authorize.js reads.
KNOWN_SEALED_PHONE_CODE = bytes.fromhex(
    "6465666768696a6b6c6d6e6f3339bd091d8c74a41c231dab9e482fbb058a2b40c021bd5ff780fe1bd9de29bd9b"
    "6e324edd98cb264beddfbf0e71"
)


def test_known_note_opens() -> None:
    assert open_note(DATA_KEY, TRANSFER_ID, "break-glass", KNOWN_SEALED_NOTE) == KNOWN_NOTE


def test_note_is_sealed_byte_for_byte_as_before() -> None:
    key = derive_key(DATA_KEY, "note/break-glass", TRANSFER_ID.encode("ascii"))
    aad = f"break-glass\x00{TRANSFER_ID}".encode("ascii")
    sealed = seal_json(key, aad, KNOWN_NOTE, compact=False, nonce=NONCE)
    assert sealed == KNOWN_SEALED_NOTE


def test_phone_note_is_sealed_byte_for_byte_as_before() -> None:
    document = {"code": "ABCD-EFGH-JKMN-PQRS"}
    sealed = seal_json(DATA_KEY, AAD_PREFIX + b"code", document, nonce=NONCE)
    assert sealed == KNOWN_SEALED_PHONE_CODE
    assert open_sealed(DATA_KEY, "code", sealed) == document


def test_note_round_trip_and_binding() -> None:
    sealed = seal_note(DATA_KEY, TRANSFER_ID, "break-glass", {"reason": "coma"})
    assert open_note(DATA_KEY, TRANSFER_ID, "break-glass", sealed) == {"reason": "coma"}
    assert sealed != seal_note(DATA_KEY, TRANSFER_ID, "break-glass", {"reason": "coma"})
    other_transfer = "1123456789ABCDEFGHJKMNPQ"
    for args in (
        (DATA_KEY, other_transfer, "break-glass", sealed),
        (DATA_KEY, TRANSFER_ID, "authorizer", sealed),
        (bytes(32), TRANSFER_ID, "break-glass", sealed),
        (DATA_KEY, TRANSFER_ID, "break-glass", sealed[:-1] + bytes([sealed[-1] ^ 1])),
    ):
        with pytest.raises(UnwrapError, match="sealed note was altered"):
            open_note(*args)


def test_open_json_refuses_what_is_not_an_object() -> None:
    sealed = seal_json(DATA_KEY, b"aad", {"a": 1})
    assert open_json(DATA_KEY, b"aad", sealed, "test note") == {"a": 1}
    list_sealed = NONCE + AESGCM(DATA_KEY).encrypt(NONCE, b"[1]", b"aad")
    with pytest.raises(UnwrapError, match=r"^This test note is not a note\.$"):
        open_json(DATA_KEY, b"aad", list_sealed, "test note")


@pytest.mark.parametrize("plaintext", [b"\xff\xfe", b"not json", b"[" * 100_000])
def test_open_json_refuses_what_is_not_json_as_unwrap_error(plaintext: bytes) -> None:
    """Found by tests/fuzz: a sender holding the key could seal anything, and bytes that are
    not UTF-8 JSON (or nest too deep) escaped as UnicodeDecodeError, JSONDecodeError or
    RecursionError."""
    sealed = NONCE + AESGCM(DATA_KEY).encrypt(NONCE, plaintext, b"aad")
    with pytest.raises(UnwrapError, match=r"^This test note is not a note\.$"):
        open_json(DATA_KEY, b"aad", sealed, "test note")


def test_seal_json_refuses_a_wrong_nonce() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        seal_json(DATA_KEY, b"aad", {}, nonce=bytes(11))
