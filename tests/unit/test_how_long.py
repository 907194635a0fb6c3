"""Lengths of time as staff read them: one of each unit is singular."""

from __future__ import annotations

import pytest

from site_agent.local_time import how_long


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "less than a second"),
        (1, "1 second"),
        (1.4, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (90, "90 seconds"),
        (120, "2 minutes"),
        (125, "2 minutes 5 seconds"),
        (301, "5 minutes 1 second"),
        (3600, "60 minutes"),
    ],
)
def test_how_long(seconds: float, words: str) -> None:
    assert how_long(seconds) == words
