"""What the DICOM node puts in the agent's audit log (`site_agent.audit`, beside the console's
records): each association's images once it ends (110104 DICOM Instances Transferred: who
sent how many, kept and refused), and each association refused (110113 Security Alert: who was
turned away and why). Refusals are recorded at most once a minute for one address; the next
record from it says how many were left out (`refused_before`), so a peer retrying in a loop
cannot grow the append-only log without bound."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from site_agent.audit import AuditLog

LOGGER = logging.getLogger(__name__)

REFUSALS_EVERY = 60.0  # seconds between two recorded refusals of one address
MAX_ADDRESSES = 10_000  # addresses whose refusals are damped; then the count starts afresh


class NodeAudit:
    """Thread-safe: called on pynetdicom's association threads."""

    def __init__(self, log: AuditLog, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._refusals: dict[str, tuple[float, int]] = {}  # address: (last recorded, left out)

    def received(self, calling_ae: str, address: str, *, kept: int, refused: int) -> None:
        self._record(
            "images-received",
            who=calling_ae,
            where=address,
            outcome="success" if not refused else "failure",
            kept=kept,
            refused=refused,
        )

    def refused(self, calling_ae: str, address: str, why: str) -> None:
        now = self._clock()
        with self._lock:
            last, left_out = self._refusals.get(address, (None, 0))
            if last is not None and 0 <= now - last < REFUSALS_EVERY:
                self._refusals[address] = (last, left_out + 1)
                return
            if len(self._refusals) >= MAX_ADDRESSES:
                self._refusals.clear()
            self._refusals[address] = (now, 0)
        detail: dict[str, object] = {"reason": why}
        if left_out:
            detail["refused_before"] = left_out
        self._record(
            "association-refused", who=calling_ae, where=address, outcome="failure", **detail
        )

    def _record(self, action: str, *, who: str, where: str, outcome: str, **detail: object) -> None:
        try:
            self._log.record(action, who=who, where=where, outcome=outcome, **detail)
        except OSError:
            LOGGER.exception("Could not write the audit log %s.", self._log.path)
