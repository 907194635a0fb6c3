"""Open associations that wait for images park their pynetdicom threads instead of polling
every millisecond (site_agent/association.py, receiving_site/pacs.py `Sending`).

No timing is asserted: each test waits for a state with a generous bound, never for a delay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from receiving_site.pacs import Sending
from receiving_site.staging import StagedObject
from site_agent.association import ReactorCheckpoint
from transfer_codes.manifest import ManifestEntry

BOUND = 10.0  # seconds a state may take to come about; reached in milliseconds


def _until(check: Callable[[], bool]) -> None:
    """Returns once `check()` is true (polled); fails after `BOUND` seconds."""
    pause = threading.Event()
    for _ in range(int(BOUND / 0.01)):
        if check():
            return
        pause.wait(0.01)
    raise AssertionError("the state never came about")


def test_a_reactor_between_rounds_is_parked_so_a_pause_returns_at_once() -> None:
    checkpoint = ReactorCheckpoint()  # set: nothing pauses the reactor
    rounds: list[bool] = []
    reactor = threading.Thread(target=lambda: rounds.append(checkpoint.wait()))
    reactor.start()
    _until(lambda: checkpoint._parked == 1)

    checkpoint.pause(lambda: True)  # returns: the parked reactor cannot take a message
    assert not checkpoint.is_set()
    assert rounds == []  # still parked while paused

    checkpoint.set()
    reactor.join(BOUND)
    assert rounds == [True]


def _image(index: int) -> StagedObject:
    entry = ManifestEntry(
        index, "1.2.3.4", "1.2.3", "1.2", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1",
        10, "0" * 64, "dicom",
    )  # fmt: skip
    return StagedObject(entry, Path(f"IM{index:06d}.dcm"))


def test_an_association_waiting_for_an_image_idles_until_one_comes() -> None:
    sending = Sending({}, None)
    calls: list[str] = []

    @contextmanager
    def waiting() -> Iterator[None]:
        calls.append("idle")
        yield
        calls.append("busy")

    taken: list[StagedObject | None] = []
    association = threading.Thread(target=lambda: taken.append(sending.next(waiting)))
    association.start()
    _until(lambda: calls == ["idle"])

    image = _image(0)
    sending.put(image)
    association.join(BOUND)
    assert taken == [image]
    assert calls == ["idle", "busy"]


def test_an_image_already_queued_is_taken_without_idling() -> None:
    sending = Sending({}, None)
    calls: list[str] = []

    @contextmanager
    def waiting() -> Iterator[None]:
        calls.append("idle")
        yield

    sending.put(_image(0))
    sending.close()
    assert sending.next(waiting) == _image(0)
    assert sending.next(waiting) is None
    assert calls == []
