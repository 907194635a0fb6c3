"""QR capabilities: the full-strength secret carried in the transfer QR.

Text form (65 characters, all in the QR alphanumeric charset ``0-9 A-Z space $%*+-./:``, so the
QR stays in alphanumeric mode and fits version 4 at error correction M)::

    TR1:T:<transfer id, 24 symbols>:K:<secret, 160 bits as 32 Crockford symbols>

``TR1`` is the format version. Fields are ``name:value`` pairs in that fixed order.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from transfer_codes import base32
from transfer_codes.errors import (
    CapabilityFormatError,
    CapabilityLengthError,
    UnknownCapabilityField,
    UnknownCapabilityVersion,
)
from transfer_codes.tokens import TRANSFER_ID_LENGTH, is_transfer_id

CAPABILITY_SECRET_BYTES = 20
CAPABILITY_SECRET_SYMBOLS = 32
VERSION_TAG = "TR1"
_FIELDS = ("T", "K")
_VERSION_PATTERN = re.compile(r"TR[0-9]+")


@dataclass(frozen=True, repr=False)
class Capability:
    """Transfer id plus a 20-byte (160-bit) secret. ``repr`` never shows the secret.

    Construction validates (ValueError): ``transfer_id`` must satisfy ``is_transfer_id`` and
    ``secret`` must be exactly 20 bytes.
    """

    transfer_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.transfer_id, str) or not is_transfer_id(self.transfer_id):
            raise ValueError("transfer_id must be 24 uppercase Crockford base32 symbols")
        if not isinstance(self.secret, bytes) or len(self.secret) != CAPABILITY_SECRET_BYTES:
            raise ValueError("capability secret must be exactly 20 bytes")

    @classmethod
    def generate(cls, transfer_id: str) -> Capability:
        """A fresh capability for ``transfer_id`` with 160 random bits."""
        return cls(transfer_id=transfer_id, secret=secrets.token_bytes(CAPABILITY_SECRET_BYTES))

    def to_text(self) -> str:
        """``TR1:T:<transfer_id>:K:<32 symbols>`` (65 characters, QR alphanumeric only)."""
        return f"{VERSION_TAG}:T:{self.transfer_id}:K:{base32.encode(self.secret)}"

    @classmethod
    def parse(cls, text: str) -> Capability:
        """Parse a scanned capability.

        Surrounding whitespace and letter case are ignored; O -> 0 and I/L -> 1 are folded in the
        values. Raises ``UnknownCapabilityVersion`` for ``TR<n>`` other than ``TR1``,
        ``UnknownCapabilityField`` for a field name other than T and K, ``CapabilityLengthError``
        for a value of the wrong length, and ``CapabilityFormatError`` (their common base) for
        anything else malformed (missing, repeated or misordered fields, bad characters).
        """
        parts = text.strip().upper().split(":")
        version = parts[0]
        if version != VERSION_TAG:
            if _VERSION_PATTERN.fullmatch(version):
                raise UnknownCapabilityVersion()
            raise CapabilityFormatError()
        pairs = parts[1:]
        if len(pairs) % 2:
            raise CapabilityLengthError()
        names = pairs[0::2]
        values = pairs[1::2]
        for name in names:
            if name not in _FIELDS:
                raise UnknownCapabilityField()
        if tuple(names) != _FIELDS:
            raise CapabilityFormatError()
        transfer_text, secret_text = values
        if len(transfer_text) != TRANSFER_ID_LENGTH or len(secret_text) != (
            CAPABILITY_SECRET_SYMBOLS
        ):
            raise CapabilityLengthError()
        try:
            transfer_id = base32.encode(base32.decode(transfer_text))
            secret = base32.decode(secret_text)
        except ValueError:
            raise CapabilityFormatError() from None
        return cls(transfer_id=transfer_id, secret=secret)

    def __repr__(self) -> str:
        return f"Capability(transfer_id={self.transfer_id!r}, secret=<hidden>)"
