"""Text from outside (the relay's answers: site display names, a hostile relay's anything) as it
may be printed on a terminal. Pure.

A terminal obeys what it is sent: ESC starts a control sequence (clear the screen, move the
cursor, set the window title), a carriage return or line break forges a line, and a bidi
override reverses what follows. Such characters are shown escaped, as Python writes them
(`\\x1b`, `\\u202e`), so staff see that something odd was sent rather than what it would do.
"""

from __future__ import annotations

import unicodedata

# The bidi embeddings, overrides, isolates and marks (Unicode TR9): format characters (Cf) that
# reorder what follows. Other format characters (the zero-width joiners that Persian and Indic
# names need, for one) are left alone.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0 (with ESC, CR, LF, TAB), DEL and C1 (with CSI); Zl, Zp: line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """`text` with every character a terminal would act on (C0 and C1 controls, DEL, line and
    paragraph separators, bidi controls) written as its escape (`"\\x1b[2J"` for ESC [2J);
    everything else, and a backslash, as given."""
    return "".join(
        _escaped(c) if c in _BIDI or unicodedata.category(c) in _CONTROL_CATEGORIES else c
        for c in text
    )
