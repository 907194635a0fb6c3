"""An accepted association's DUL reads a PDU as it arrives (`bounds.wake_on_data`), with a
recorder fake for the DUL and a real socket pair."""

from __future__ import annotations

import socket
import time
from typing import Any

from sending_site.inbox.bounds import wake_on_data

DELAY = 0.2  # seconds: the fake DUL's loop delay where a look at an idle socket must wait it
# Where data is there to read, a delay the look must not wait out: so long that a loaded
# machine's own pauses never come near it (the look takes microseconds).
NOT_WAITED = 30.0


class FakeSocket:
    def __init__(self, sock: socket.socket | None) -> None:
        self.socket = sock


class FakeDUL:
    """What `wake_on_data` uses of pynetdicom's DUL, recording the transport checks."""

    def __init__(self, sock: socket.socket | None, delay: float = DELAY) -> None:
        self._run_loop_delay = delay
        self.socket = FakeSocket(sock)
        self.calls: list[str] = []

    def _is_transport_event(self) -> bool:
        self.calls.append("dul._is_transport_event")
        return True


class FakeAssociation:
    def __init__(self, dul: Any) -> None:
        self.dul = dul


def _timed_check(dul: FakeDUL) -> tuple[bool, float]:
    start = time.monotonic()
    event = dul._is_transport_event()
    return event, time.monotonic() - start


def test_the_dul_waits_for_data_in_its_check_instead_of_sleeping() -> None:
    ours, peer = socket.socketpair()
    try:
        dul = FakeDUL(ours)
        wake_on_data(FakeAssociation(dul))
        assert dul._run_loop_delay == 0.0  # the loop no longer sleeps...
        assert _timed_check(dul)[1] >= DELAY * 0.9  # ...its look at an idle socket waits
        assert dul.calls == ["dul._is_transport_event"]
        slow = FakeDUL(ours, delay=NOT_WAITED)
        wake_on_data(FakeAssociation(slow))
        peer.sendall(b"\x04\x00")  # a P-DATA-TF PDU begins
        event, took = _timed_check(slow)
        assert event
        assert took < NOT_WAITED / 2  # read as it comes, not after a sleep
        assert slow.calls == ["dul._is_transport_event"]
    finally:
        ours.close()
        peer.close()


def test_a_closed_socket_still_waits_and_is_left_to_pynetdicom() -> None:
    dul = FakeDUL(None)
    wake_on_data(FakeAssociation(dul))
    assert _timed_check(dul)[1] >= DELAY * 0.9  # no spinning once the socket is gone
    assert dul.calls == ["dul._is_transport_event"]


def test_a_dul_of_another_shape_is_left_alone() -> None:
    dul = FakeDUL(None)
    dul._run_loop_delay = 1  # type: ignore[assignment]  # not pynetdicom's float
    check = dul._is_transport_event
    wake_on_data(FakeAssociation(dul))
    assert dul._run_loop_delay == 1
    assert dul._is_transport_event == check
