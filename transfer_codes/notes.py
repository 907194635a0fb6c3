"""Small sealed notes (break-glass reason, authorizer details): AES-256-GCM under a key derived
from the data key with its own purpose, bound to the transfer id. The relay stores them opaque."""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.errors import UnwrapError
from transfer_codes.keys import derive_key

NONCE_BYTES = 12


def seal_note(data_key: bytes, transfer_id: str, purpose: str, note: dict[str, object]) -> bytes:
    """nonce (12 random bytes) || AES-256-GCM(JSON of `note`), AAD = purpose and transfer id."""
    key = derive_key(data_key, f"note/{purpose}", transfer_id.encode("ascii"))
    nonce = os.urandom(NONCE_BYTES)
    aad = f"{purpose}\x00{transfer_id}".encode("ascii")
    return nonce + AESGCM(key).encrypt(nonce, json.dumps(note).encode("utf-8"), aad)


def open_note(data_key: bytes, transfer_id: str, purpose: str, sealed: bytes) -> dict[str, object]:
    """Inverse of `seal_note`; raises `UnwrapError` if the note was altered or is not this one."""
    key = derive_key(data_key, f"note/{purpose}", transfer_id.encode("ascii"))
    aad = f"{purpose}\x00{transfer_id}".encode("ascii")
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as e:
        raise UnwrapError("This sealed note was altered or belongs to another transfer.") from e
    value = json.loads(plain)
    if not isinstance(value, dict):
        raise UnwrapError("This sealed note is not a note.")
    return value
