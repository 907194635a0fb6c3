"""A held study as `hold_record` keeps it, for the pure tests of the holds queue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from receiving_site.hold_record import HeldStudy, Reason
from receiving_site.holds import Person


def held_study(transfer_id: str, reason: Reason = Reason.PATIENT_ID, **changes: Any) -> HeldStudy:
    """DOE^JANE from St. Mary's, held on the way into PACS@127.0.0.1:104; `changes` replace
    any field."""
    held = HeldStudy(
        transfer_id=transfer_id,
        reason=reason,
        sentence="The PACS already has patient ID ER-12345 under a different name.",
        skippable=False,
        pacs="PACS@127.0.0.1:104",
        calling_ae_title="TRAUMARELAY",
        sender="St. Mary's ED",
        break_glass=False,
        ours=Person("ER-12345", "DOE^JANE", "19850214", "F"),
        theirs=None,
        study="CT TRAUMA PANSCAN 2025-01-01",
        image_count=3,
        local_patient_id=None,
        local_issuer="",
        at=0.0,
    )
    return replace(held, **changes)
