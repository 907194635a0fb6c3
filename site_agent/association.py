"""Requesting associations that never lose a reply to pynetdicom's own reactor.

pynetdicom 3.0 runs a reactor thread per association that takes any DIMSE message off the
queue and serves it as a request. Before each `send_*` it pauses the reactor by clearing an
Event and spinning until the flag `_is_paused` is true; but after one operation ends the flag
is still true from the last pause while the woken reactor runs one more round. A message sent
in that window can have its reply taken by the reactor ("Received unexpected C-FIND service
message") and the sender waits out the DIMSE timeout. It showed as a held study under load,
and can hit any second message on an association (every C-STORE after the first).

`steady()` swaps the association's checkpoint for one that knows when the reactor is parked,
and `pause_reactor()` waits for that before each message. Both touch the association's private
`_reactor_checkpoint`, which the reactor reads afresh on every round; a pynetdicom upgrade
must keep `tests/integration/test_association_race.py` green.

Both of pynetdicom's threads per association poll: the association's reactor runs a round
every millisecond, the DUL's every millisecond while it has nothing to do. Four open
associations then cost a fifth of a core doing nothing (measured: 0.19 CPU s per second),
and their wake-ups take the interpreter lock from the threads that do the work. The
checkpoint therefore gives the association's reactor a round every `IDLE_ROUND_SECONDS`
only (it answers a peer's release or abort that much later; our own messages never wait for
it, as it is parked between rounds), and `idle()` slows the DUL's polling while the caller
waits for something to send.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_POLL_SECONDS = 0.05  # how often a pause re-checks that the reactor thread still lives
# Seconds between the association reactor's rounds when nothing pauses it (pynetdicom: 0.001).
IDLE_ROUND_SECONDS = 0.05
# Seconds between the DUL's polls of an idle association inside `idle()` (pynetdicom: 0.001):
# also the most the first message after it waits for the DUL to wake.
IDLE_POLL_SECONDS = 0.02


class ReactorCheckpoint:
    """A drop-in for the reactor's `threading.Event` that also says when the reactor is
    blocked in `wait()`: the only moment it cannot take a message off the queue."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._flag = True
        self._parked = 0

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """The reactor's side, once per round: parks until the next round is due (at most
        `IDLE_ROUND_SECONDS`, sooner when set again), and on while cleared; True once set,
        False on timeout."""
        with self._cond:
            self._parked += 1
            self._cond.notify_all()
            try:
                if self._flag:
                    # A round now would find nothing to do: the reactor only serves the
                    # peer's requests, release and abort, which can wait this long.
                    self._cond.wait(IDLE_ROUND_SECONDS)
                return self._cond.wait_for(lambda: self._flag, timeout)
            finally:
                self._parked -= 1

    def pause(self, alive: Any) -> None:
        """Clear, then return once the reactor is parked in `wait()`, or once `alive()` is
        false (a dead reactor takes nothing)."""
        with self._cond:
            self._flag = False
            while not self._parked and alive():
                self._cond.wait(_POLL_SECONDS)


def steady(assoc: Any) -> None:
    """Prepare an established requestor association: the reactor checkpoint above, and each
    DIMSE message sent at once (pynetdicom leaves Nagle's algorithm on, and with the peer's
    delayed ACK every C-STORE then waits ~40 ms: minutes on a 3,000-image pan-scan)."""
    if not isinstance(assoc._reactor_checkpoint, ReactorCheckpoint):
        # Between operations the old Event is set, so a reactor still holding it never blocks
        # on it; from its next round it parks on the new one.
        assoc._reactor_checkpoint = ReactorCheckpoint()
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def pause_reactor(assoc: Any) -> None:
    """Call before each `send_*` (and `release`) on an association made `steady()`: returns
    once the reactor cannot take the reply."""
    checkpoint = assoc._reactor_checkpoint
    if isinstance(checkpoint, ReactorCheckpoint):
        checkpoint.pause(assoc.is_alive)


@contextmanager
def idle(assoc: Any) -> Iterator[None]:
    """While the caller has nothing to send on `assoc` (it waits for work), its DUL polls
    every `IDLE_POLL_SECONDS` instead of every millisecond; the first message sent after it
    may wait that long for the DUL to wake. Touches the DUL's private `_run_loop_delay`."""
    dul = assoc.dul
    before = getattr(dul, "_run_loop_delay", None)
    if not isinstance(before, float):  # not the pynetdicom this was written for: leave it
        yield
        return
    dul._run_loop_delay = max(before, IDLE_POLL_SECONDS)
    try:
        yield
    finally:
        dul._run_loop_delay = before


@contextmanager
def in_use(assoc: Any) -> Iterator[Any]:
    """An established requestor association made `steady()`, released on exit with the reactor
    paused."""
    steady(assoc)
    try:
        yield assoc
    finally:
        pause_reactor(assoc)
        assoc.release()
