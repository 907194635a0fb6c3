"""Random identifiers and bearer tokens, as Crockford base32 text.

Transfer ids name a transfer everywhere (URLs, sealed-object headers, audit records); they are
not secret. Tokens are secrets (site credentials, authorization tokens): a server stores only
``token_digest(token)``.
"""

from __future__ import annotations

import hashlib
import secrets

from transfer_codes import base32

TRANSFER_ID_BYTES = 15
TRANSFER_ID_LENGTH = 24
TOKEN_BYTES = 30
TOKEN_LENGTH = 48

_CANONICAL = frozenset(base32.ALPHABET)
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_transfer_id() -> str:
    """A fresh transfer id: 15 random bytes (120 bits) as 24 uppercase Crockford symbols."""
    return base32.encode(secrets.token_bytes(TRANSFER_ID_BYTES))


def is_transfer_id(text: str) -> bool:
    """True iff ``text`` is exactly 24 canonical (uppercase, unfolded) Crockford symbols."""
    return len(text) == TRANSFER_ID_LENGTH and _CANONICAL.issuperset(text)


def new_token() -> str:
    """A fresh bearer token: 30 random bytes (240 bits) as 48 uppercase Crockford symbols."""
    return base32.encode(secrets.token_bytes(TOKEN_BYTES))


def normalize_token(token: str) -> str:
    """Canonical form of a presented token: surrounding whitespace removed, uppercased, O -> 0,
    I/L -> 1. Total: never raises; malformed input simply stays malformed."""
    return token.strip().upper().translate(_FOLD)


def token_digest(token: str) -> bytes:
    """SHA-256 (32 bytes) of the normalized token's UTF-8 bytes: the value a server stores.

    Never raises, so a server can hash whatever a client presents and compare digests in
    constant time; a malformed token yields a digest that matches no issued token.
    """
    return hashlib.sha256(normalize_token(token).encode("utf-8", "surrogatepass")).digest()
