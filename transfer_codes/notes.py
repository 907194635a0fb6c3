"""Small sealed JSON documents ("notes"), the one AEAD format for them in this package.

Sealed note: ``nonce (12 random bytes) || AES-256-GCM(key, nonce, JSON, additional data)``. The
caller's purpose fixes the key and the additional data, so one note cannot stand in for another:

- transfer notes (break-glass reason, authorizer details; `seal_note`): key derived from the
  data key with purpose ``note/<purpose>`` and the transfer id, additional data
  ``<purpose> NUL <transfer id>``. The relay stores them opaque.
- phone notes (`transfer_codes.phone`): the phone key itself, additional data
  ``trauma-relay/v1/phone/<purpose>``; ``relay/pages/authorize.js`` reads and writes the same.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.errors import UnwrapError
from transfer_codes.keys import derive_key

NONCE_BYTES = 12


def seal_json(
    key: bytes,
    aad: bytes,
    document: Mapping[str, object],
    *,
    compact: bool = True,
    nonce: bytes | None = None,
) -> bytes:
    """``nonce || AES-256-GCM(key, nonce, JSON of document, aad)`` with a fresh random nonce unless
    one is given (only known-answer tests give one).

    ``compact`` writes the JSON as a browser's ``JSON.stringify`` does (no spaces, UTF-8);
    ``compact=False`` writes Python's ``json.dumps`` defaults (``", "``, ``": "``, ``\\u``
    escapes), which transfer notes have always used. Readers accept both.
    """
    if nonce is None:
        nonce = secrets.token_bytes(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError("nonce must be 12 bytes")
    if compact:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(document)
    return nonce + AESGCM(key).encrypt(nonce, text.encode("utf-8"), aad)


def open_json(key: bytes, aad: bytes, sealed: bytes, what: str) -> dict[str, object]:
    """Inverse of `seal_json`. Raises `UnwrapError` ("This <what> was altered or belongs to another
    transfer.") if the key, the additional data or the bytes are not the ones sealed, and
    `UnwrapError` ("This <what> is not a note.") if what it holds is not a JSON object (a sender
    holding the key could seal anything)."""
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as e:
        raise UnwrapError(f"This {what} was altered or belongs to another transfer.") from e
    try:
        value = json.loads(plain)
    except (ValueError, RecursionError) as e:  # not UTF-8 (a ValueError), not JSON, too deep
        raise UnwrapError(f"This {what} is not a note.") from e
    if not isinstance(value, dict):
        raise UnwrapError(f"This {what} is not a note.")
    return value


def _note_key_and_aad(data_key: bytes, transfer_id: str, purpose: str) -> tuple[bytes, bytes]:
    key = derive_key(data_key, f"note/{purpose}", transfer_id.encode("ascii"))
    return key, f"{purpose}\x00{transfer_id}".encode("ascii")


def seal_note(data_key: bytes, transfer_id: str, purpose: str, note: dict[str, object]) -> bytes:
    """A transfer note: `seal_json` under the note key of `purpose`, bound to the transfer id."""
    key, aad = _note_key_and_aad(data_key, transfer_id, purpose)
    return seal_json(key, aad, note, compact=False)


def open_note(data_key: bytes, transfer_id: str, purpose: str, sealed: bytes) -> dict[str, object]:
    """Inverse of `seal_note`; raises `UnwrapError` if the note was altered or is not this one."""
    key, aad = _note_key_and_aad(data_key, transfer_id, purpose)
    return open_json(key, aad, sealed, "sealed note")
