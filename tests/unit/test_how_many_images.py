"""Counts of images as staff read them, written once for both sites: one image is singular."""

from __future__ import annotations

import pytest

from site_agent.dicom_text import how_many_images


@pytest.mark.parametrize(
    ("count", "words"),
    [(0, "0 images"), (1, "1 image"), (2, "2 images"), (1203, "1203 images")],
)
def test_one_image_is_singular(count: int, words: str) -> None:
    assert how_many_images(count) == words
