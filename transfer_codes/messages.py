"""The one rule for user-facing error text, used by every package's error root.

An exception's docstring is the sentence a nurse or an operator sees. Docstrings wrap and indent
in the source; the message must not: whitespace runs (newlines with the next line's indent) fold
to one space. An explicit message given by a raiser is used as given, so it is written on one
line (implicitly joined string literals, never triple quotes); tests/unit/test_error_messages.py
checks every package's errors module.
"""

from __future__ import annotations


def fold(text: str) -> str:
    """`text` on one line: every run of whitespace becomes one space, ends trimmed."""
    return " ".join(text.split())


def from_docstring(cls: type) -> str:
    """The user-facing sentence of an exception class: its docstring, folded (or its name)."""
    return fold(cls.__doc__ or cls.__name__)
