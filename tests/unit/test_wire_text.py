"""`transfer_codes.wire`: the one text form of bytes in JSON bodies and state files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfer_codes.wire import b64decode_text, b64encode_text


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    assert b64decode_text(b64encode_text(data)) == data


def test_standard_alphabet_with_padding() -> None:
    assert b64encode_text(b"\xfb\xff") == "+/8="


@pytest.mark.parametrize(
    "text",
    [
        "+/8",
        "+/8=\n",
        "-_8=",
        "é===",
        "+/ 8=",
        "+/8==",
        "+/9=",
        "QUJ=",
    ],  # the last three: not canonical
)
def test_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (binascii.Error or the ASCII refusal)
        b64decode_text(text)
