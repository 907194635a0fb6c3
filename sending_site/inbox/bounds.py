"""Limits pynetdicom does not enforce on an acceptor, set on each association as it is made.

pynetdicom reads a PDU of whatever length its header declares, growing a buffer to 4 GB if a
peer says so and keeps sending, and it assembles a C-STORE data set of any size in memory.
Here each accepted association gets two guards before its first byte is read:

- a PDU declaring more than our Maximum Length Receive is not read: the connection is closed
  (pynetdicom treats the failed read as a closed transport);
- a data set growing past `max_instance_bytes` is not assembled further: the association is
  aborted (pynetdicom's own answer to an invalid message, event 19, A-ABORT).

Each also gets a prompter reader (`wake_on_data`): pynetdicom's DUL sleeps a millisecond
between looks at an idle socket, so each PDU of every image waited up to that long to be read.

Only this module touches pynetdicom's internals (the association's socket `recv`, its DIMSE
provider's `receive_primitive`, its DUL event queue, loop delay and transport check); a
pynetdicom upgrade must keep `tests/integration/test_inbox_hostile.py` green.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynetdicom.transport import RequestHandler

LOGGER = logging.getLogger(__name__)

# A PDV's message control header: bit 0 set for a command fragment, bit 1 set on the last one.
_COMMAND_BIT = 0b01
_LAST_BIT = 0b10
# An association request proposing a hundred SOP classes with several syntaxes each runs to
# tens of kilobytes, more than a small Maximum Length Receive (which bounds P-DATA PDUs only).
MIN_PDU_READ = 256 * 1024
_INVALID_PDU = "Evt19"  # the DUL's event for an invalid PDU: it aborts the association


@dataclass(frozen=True)
class Limits:
    max_pdu_bytes: int
    max_instance_bytes: int


def peer_address(assoc: Any) -> str:
    """Where an accepted association comes from, for the log."""
    info = assoc.requestor.address_info
    return f"{info.address}:{info.port}" if info else "an unknown address"


def guard_pdu_reads(assoc: Any, max_pdu_bytes: int) -> None:
    """Refuse to read a PDU declaring more than `max_pdu_bytes` (or `MIN_PDU_READ`, if more).
    The DUL reads the 6 header bytes, then the declared length in one call."""
    sock = assoc.dul.socket
    read = sock.recv
    limit = max(max_pdu_bytes, MIN_PDU_READ)

    def recv(nr_bytes: int) -> bytearray:
        if nr_bytes > limit:
            LOGGER.warning(
                "Closed the connection from %s: it sent a PDU declaring %d bytes, more than "
                "the %d this agent accepts.",
                peer_address(assoc),
                nr_bytes,
                limit,
            )
            raise OSError(f"PDU of {nr_bytes} bytes refused unread")
        data: bytearray = read(nr_bytes)
        return data

    sock.recv = recv


def guard_data_set_size(assoc: Any, max_instance_bytes: int) -> None:
    """Abort the association when one message's data set passes `max_instance_bytes`."""
    dimse = assoc.dimse
    receive = dimse.receive_primitive
    size = 0
    refused = False

    def receive_primitive(primitive: Any) -> None:
        nonlocal size, refused
        if refused:  # the abort is on its way; assemble nothing more
            return
        last = False
        for _context_id, pdv in primitive.presentation_data_value_list:
            if pdv and not pdv[0] & _COMMAND_BIT:
                size += len(pdv) - 1
                last = last or bool(pdv[0] & _LAST_BIT)
        if size > max_instance_bytes:
            refused = True
            LOGGER.warning(
                "Aborted the association from %s: an image passed %d bytes, more than the "
                "%d this agent accepts (max_instance_bytes).",
                peer_address(assoc),
                size,
                max_instance_bytes,
            )
            assoc.dul.event_queue.put(_INVALID_PDU)
            return
        receive(primitive)
        if last:
            size = 0

    dimse.receive_primitive = receive_primitive


def wake_on_data(assoc: Any) -> None:
    """Let the association's DUL wait for incoming data in `select` rather than sleep: an idle
    DUL loop sleeps `_run_loop_delay` (1 ms) and then looks at the socket, so a PDU arriving
    meanwhile waited for the sleep to end; here the look itself waits up to that long and
    returns as soon as data comes. The loop then no longer sleeps, so what it has to send
    (a C-STORE response) still waits at most that long, as before, and an idle association
    wakes as often as before. Left as it is if the DUL is not the one this was written for."""
    dul = assoc.dul
    wait = getattr(dul, "_run_loop_delay", None)
    check = getattr(dul, "_is_transport_event", None)
    if not isinstance(wait, float) or wait <= 0 or check is None:
        return

    def is_transport_event() -> bool:
        sock = getattr(dul.socket, "socket", None)
        if sock is None:  # closed: nothing to wait for, but the loop must not spin
            time.sleep(wait)
        else:
            # Ready or not, pynetdicom's own check follows (and reports a closed socket).
            with contextlib.suppress(OSError, ValueError):
                select.select([sock], [], [], wait)
        return bool(check())

    dul._is_transport_event = is_transport_event
    dul._run_loop_delay = 0.0


def bounded_request_handler(limits: Limits) -> Callable[..., RequestHandler]:
    """A pynetdicom request handler class whose associations carry both guards."""

    class BoundedRequestHandler(RequestHandler):
        def _create_association(self) -> Any:
            # Each C-STORE response goes out at once, not after the peer's delayed ACK.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assoc = super()._create_association()
            guard_pdu_reads(assoc, limits.max_pdu_bytes)
            guard_data_set_size(assoc, limits.max_instance_bytes)
            wake_on_data(assoc)
            return assoc

    return BoundedRequestHandler
