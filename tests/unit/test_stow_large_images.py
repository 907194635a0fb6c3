"""Storing over STOW-RS as the images arrive, `stow.POSTS_AT_ONCE` posts are in flight, but at
most `stow.LARGE_AT_ONCE` of them hold an image bigger than a batch (each such image goes alone
and is read whole into memory), so a third post never adds a third large image to memory. The
post itself is replaced here by one that records how many large images are in flight at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from receiving_site import stow
from receiving_site.staging import StagedObject
from transfer_codes.manifest import ManifestEntry

# How long a post of a large image waits for the other posts to join it; with a post more than
# allowed joining, the test fails whatever the wait (it only makes a passing run slower).
JOIN_WAIT = 0.5


def _image(index: int, size: int) -> StagedObject:
    entry = ManifestEntry(
        index, f"1.2.3.4.{index + 1}", "1.2.3", "1.2", "1.2.840.10008.5.1.4.1.1.2",
        "1.2.840.10008.1.2.1", size, "0" * 64, "dicom",
    )  # fmt: skip
    return StagedObject(entry, Path(f"IM{index:06d}.dcm"))


class _Posts:
    """Stands in for `stow._store_batch`: each large image's post waits until every posting
    thread holds one (or `JOIN_WAIT` passes), and the most held at once is kept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.all_in = threading.Event()
        self.large_now = self.most = 0
        self.posted: list[int] = []

    async def store_batch(
        self, _session: Any, _dest: Any, batch: list[StagedObject], *_: Any
    ) -> Any:
        large = batch[0].entry.size > stow.BATCH_BYTES
        if large:
            with self.lock:
                self.large_now += 1
                self.most = max(self.most, self.large_now)
                if self.large_now == stow.POSTS_AT_ONCE:
                    self.all_in.set()
            await asyncio.to_thread(self.all_in.wait, JOIN_WAIT)
            with self.lock:
                self.large_now -= 1
        with self.lock:
            self.posted.extend(item.entry.index for item in batch)
        return len(batch), []


def test_at_most_two_posts_hold_a_large_image_and_every_image_is_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stow.POSTS_AT_ONCE > stow.LARGE_AT_ONCE == 2
    posts = _Posts()
    monkeypatch.setattr(stow, "_store_batch", posts.store_batch)
    storing = stow.StowAsVerified(stow.StowDestination("http://127.0.0.1:9/dicom-web"))
    large = stow.BATCH_BYTES + 1
    images = [_image(i, large) for i in range(6)] + [_image(6 + i, 1000) for i in range(3)]
    for image in images:
        storing.put(image)
    storing.close()
    delivery = storing.finish()
    assert posts.most == stow.LARGE_AT_ONCE
    assert sorted(posts.posted) == list(range(len(images)))
    assert delivery.stored == len(images)
