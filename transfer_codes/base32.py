"""Crockford base32 text encoding (https://www.crockford.com/base32.html), without check symbols.

Alphabet ``0123456789ABCDEFGHJKMNPQRSTVWXYZ`` (values 0..31): no I, L, O or U, so a code read over
the phone cannot be confused. Decoding is case-insensitive and folds the look-alikes O -> 0 and
I, L -> 1. Bits are taken most significant first, five per symbol.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_VALUES: dict[str, int] = {}
for _value, _symbol in enumerate(ALPHABET):
    _VALUES[_symbol] = _value
    _VALUES[_symbol.lower()] = _value
for _alias, _canonical in (("O", "0"), ("I", "1"), ("L", "1")):
    _VALUES[_alias] = _VALUES[_canonical]
    _VALUES[_alias.lower()] = _VALUES[_canonical]
del _value, _symbol, _alias, _canonical


def symbol_value(symbol: str) -> int | None:
    """Value 0..31 of one typed symbol (any case, look-alikes folded), or None if not a symbol."""
    return _VALUES.get(symbol)


def encode_int(value: int, symbols: int) -> str:
    """``value`` (0 <= value < 32**symbols) as exactly ``symbols`` symbols, most significant first.

    Raises ValueError if the value does not fit.
    """
    if not 0 <= value < 1 << (5 * symbols):
        raise ValueError(f"value does not fit in {symbols} base32 symbols")
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(symbols)))


def encode(data: bytes) -> str:
    """Uppercase Crockford base32 of ``data``, no padding.

    ``len(data)`` must be a multiple of 5 (each 5 bytes become 8 symbols); ValueError otherwise.
    """
    if len(data) % 5:
        raise ValueError("base32 input length must be a multiple of 5 bytes")
    return encode_int(int.from_bytes(data, "big"), len(data) * 8 // 5) if data else ""


def decode(text: str) -> bytes:
    """Bytes encoded by ``text`` (case-insensitive; O -> 0 and I, L -> 1 folded).

    ``len(text)`` must be a multiple of 8 and every character a base32 symbol; ValueError
    otherwise. No separators are accepted here (callers strip them where humans type).
    """
    if len(text) % 8:
        raise ValueError("base32 text length must be a multiple of 8 symbols")
    value = 0
    for position, symbol in enumerate(text, start=1):
        digit = _VALUES.get(symbol)
        if digit is None:
            raise ValueError(f"character {position} ({symbol!r}) is not a base32 symbol")
        value = (value << 5) | digit
    return value.to_bytes(len(text) * 5 // 8, "big")
