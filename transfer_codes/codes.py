"""Redemption codes: the 16-symbol code that travels with the patient (printed, or read aloud).

Layout (Crockford base32 symbols, most significant first)::

    position  0-1   locator   10 bits, 0..1023: lets the relay find the transfer; public
    position  2-14  secret    65 bits from ``secrets``; the only secret part
    position  15    check     one check symbol

Shown grouped as ``XXXX-XXXX-XXXX-XXXX``. When parsing, spaces and hyphens are ignored, case is
ignored, and O -> 0, I/L -> 1 are folded, so nothing a nurse may plausibly write costs an attempt.

Check symbol. Symbols are elements d_0..d_15 of GF(32) = GF(2)[x]/(x^5 + x^2 + 1). With
alpha = x (a generator: the multiplicative group has prime order 31, so every element other than
1 generates it) and weights w_i = alpha^i, the check symbol d_15 is chosen so that

    S = sum_{i=0..15} w_i * d_i = 0.

Claim: every single-symbol substitution and every adjacent transposition is rejected.

* Substitution at position i, d_i -> e != d_i: S changes by w_i * (d_i + e) (addition in GF(2^5)
  is XOR, so subtraction equals addition). w_i != 0 and d_i + e != 0, and a field has no zero
  divisors, so the new sum is non-zero.
* Transposition of positions i and j (adjacent or not) with d_i != d_j: S changes by
  w_i d_i + w_j d_j + w_i d_j + w_j d_i = (w_i + w_j)(d_i + d_j). The weights alpha^0..alpha^15
  are distinct because alpha has order 31 > 15, so w_i + w_j != 0; d_i + d_j != 0; the product
  is non-zero. (Swapping equal symbols changes nothing and is not an error.)

Both hold for the check symbol's own position too. ``tests/unit/test_codes.py`` checks every
substitution and adjacent transposition exhaustively for a set of codes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from transfer_codes import base32
from transfer_codes.errors import CodeCharacterError, CodeChecksumError, CodeLengthError

CODE_LENGTH = 16
LOCATOR_SYMBOLS = 2
SECRET_SYMBOLS = 13
LOCATOR_BITS = 5 * LOCATOR_SYMBOLS
SECRET_BITS = 5 * SECRET_SYMBOLS
LOCATOR_LIMIT = 1 << LOCATOR_BITS  # locators are 0..1023
SECRET_LIMIT = 1 << SECRET_BITS
SECRET_BYTES = 9  # 65 bits, big-endian, in secret_bytes()

# What a person may put between symbols: spaces, tabs, ASCII and Unicode hyphens/dashes (word
# processors and phones replace "-" with these).
_SEPARATORS = frozenset(" \t\r\n\u00a0-\u2010\u2011\u2012\u2013\u2014\u2212")

_FIELD_POLY = 0b100101  # x^5 + x^2 + 1


def _gf_mul(a: int, b: int) -> int:
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0b100000:
            a ^= _FIELD_POLY
    return product


_MUL = tuple(tuple(_gf_mul(a, b) for b in range(32)) for a in range(32))


def _power(exponent: int) -> int:
    value = 1
    for _ in range(exponent % 31):
        value = _MUL[value][2]
    return value


WEIGHTS: tuple[int, ...] = tuple(_power(i) for i in range(CODE_LENGTH))
_INVERSE_LAST_WEIGHT = _power(31 - (CODE_LENGTH - 1))


def weighted_sum(digits: list[int] | tuple[int, ...]) -> int:
    """sum w_i * d_i over GF(32) for the first len(digits) positions; 0 for a valid code."""
    total = 0
    for weight, digit in zip(WEIGHTS, digits, strict=False):
        total ^= _MUL[weight][digit]
    return total


def check_symbol_value(digits: list[int] | tuple[int, ...]) -> int:
    """The check value d_15 that makes the weighted sum of ``digits`` (15 values) plus it zero."""
    if len(digits) != CODE_LENGTH - 1:
        raise ValueError("check symbol needs exactly 15 leading symbols")
    return _MUL[weighted_sum(digits)][_INVERSE_LAST_WEIGHT]


@dataclass(frozen=True, repr=False)
class RedemptionCode:
    """A redemption code: public ``locator`` (0..1023) and ``secret`` (0 <= secret < 2**65).

    Construction validates ranges (ValueError). ``repr`` never shows the secret.
    """

    locator: int
    secret: int

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("locator", self.locator, LOCATOR_LIMIT),
            ("secret", self.secret, SECRET_LIMIT),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
                raise ValueError(f"{name} must be an integer in 0..{limit - 1}")

    @classmethod
    def generate(cls, locator: int) -> RedemptionCode:
        """A fresh code for ``locator`` with a uniformly random 65-bit secret."""
        return cls(locator=locator, secret=secrets.randbits(SECRET_BITS))

    @classmethod
    def parse(cls, text: str) -> RedemptionCode:
        """Parse what a person typed.

        Spaces and hyphens are ignored, case is ignored, O -> 0 and I/L -> 1 are folded.
        Raises (all ``CodeFormatError``, messages a nurse can act on, positions 1-based counting
        code characters only, not separators):
        ``CodeCharacterError(position=k)`` for the first character that is not a code symbol,
        ``CodeLengthError`` if there are not exactly 16 symbols,
        ``CodeChecksumError`` if the check symbol does not match (a typo or a swap).
        """
        digits: list[int] = []
        for character in text:
            if character in _SEPARATORS:
                continue
            value = base32.symbol_value(character)
            if value is None:
                raise CodeCharacterError(position=len(digits) + 1, character=character)
            digits.append(value)
        if len(digits) != CODE_LENGTH:
            raise CodeLengthError(len(digits))
        if weighted_sum(digits):
            raise CodeChecksumError()
        number = 0
        for digit in digits[:-1]:
            number = (number << 5) | digit
        return cls(locator=number >> SECRET_BITS, secret=number & (SECRET_LIMIT - 1))

    def _digits(self) -> list[int]:
        number = (self.locator << SECRET_BITS) | self.secret
        digits = [(number >> (5 * i)) & 31 for i in reversed(range(CODE_LENGTH - 1))]
        digits.append(check_symbol_value(digits))
        return digits

    def compact(self) -> str:
        """The 16 symbols, uppercase, no separators."""
        return "".join(base32.ALPHABET[d] for d in self._digits())

    def grouped(self) -> str:
        """The 16 symbols as four groups of four: ``XXXX-XXXX-XXXX-XXXX``."""
        text = self.compact()
        return "-".join(text[i : i + 4] for i in range(0, CODE_LENGTH, 4))

    def secret_bytes(self) -> bytes:
        """The canonical KDF input: the 65-bit secret as 9 bytes, big-endian.

        The locator is public and deliberately not part of it.
        """
        return self.secret.to_bytes(SECRET_BYTES, "big")

    def __repr__(self) -> str:
        return f"RedemptionCode(locator={self.locator}, secret=<hidden>)"


def looks_like_code(text: str) -> bool:
    """True if ``text`` should be handled as a typed code rather than a scanned capability.

    A capability always contains ``:`` (``TR1:T:...``); a typed code never does. A True answer
    does not mean the code is valid (typos included): pass it to ``RedemptionCode.parse`` for a
    precise, nurse-readable verdict. Empty text and text far longer than a code return False.
    """
    if ":" in text:
        return False
    return 0 < symbol_count(text) <= 2 * CODE_LENGTH


def symbol_count(text: str) -> int:
    """How many characters of ``text`` are not separators: what ``RedemptionCode.parse`` would
    count as the code's characters, valid or not."""
    return sum(1 for character in text if character not in _SEPARATORS)
