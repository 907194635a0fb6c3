"""Relay-sent text on a terminal: what a terminal would act on is shown escaped."""

from __future__ import annotations

import pytest

from site_agent.terminal_text import shown


@pytest.mark.parametrize(
    ("sent", "printed"),
    [
        ("County\x1b[2J Trauma", "County\\x1b[2J Trauma"),  # ESC: clear the screen
        ("A\x9b2JB", "A\\x9b2JB"),  # C1 CSI, the one-byte ESC [
        ("A\x7fB\x00C\tD", "A\\x7fB\\x00C\\x09D"),  # DEL, NUL, TAB
        ("line\r\nforged", "line\\x0d\\x0aforged"),
        ("abc\u202edef\u2066g\u200fh", "abc\\u202edef\\u2066g\\u200fh"),  # bidi controls
        ("a\u2028b", "a\\u2028b"),  # line separator
    ],
)
def test_controls_are_escaped(sent: str, printed: str) -> None:
    assert shown(sent) == printed


@pytest.mark.parametrize(
    "name",
    [
        "County Trauma Center",
        "H\u00f4pital Saint-\u00c9loi",
        "\u0645\u0631\u06a9\u0632\u200c\u062a\u0631\u0648\u0645\u0627",  # ZWNJ, Persian
        "St. Mary's ED",
        "a\\x1b",  # a backslash as given
    ],
)
def test_names_without_controls_are_as_given(name: str) -> None:
    assert shown(name) == name
