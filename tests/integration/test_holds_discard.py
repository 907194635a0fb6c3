"""A discard in the holds queue (`holds_queue.decide`) on this machine's own state folder:
it waits its turn behind another run of the same transfer, then goes by the hold as that run
left it (how many images the PACS has), not as it was read before the wait."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from held_studies import held_study

from receiving_site import hold_record, state
from receiving_site.holds_queue import Choice, Decision, Place, decide
from site_agent import file_lock
from site_agent.audit import AuditLog
from transfer_codes.tokens import new_transfer_id


@pytest.mark.asyncio
async def test_a_discard_waiting_its_turn_goes_by_the_hold_as_the_other_run_left_it(
    tmp_path: Path,
) -> None:
    tid = new_transfer_id()
    state.save_key(
        tmp_path, state.SavedKey(tid, "https://relay.test", b"k" * 32, "St. Mary's ED", False)
    )
    hold_record.save(tmp_path, held_study(tid, stored_in_pacs=3, at=time.time()))
    lock = state.folder(tmp_path) / state.slot_file("lock", state.slot_of(tmp_path, tid))
    audit = AuditLog(tmp_path / "audit", time.time)

    with file_lock.held(lock):  # another run of this transfer (a "Try again") is under way
        discarding = asyncio.create_task(
            decide(
                Place(tmp_path, ""), tid, Decision(Choice.DISCARD), audit=audit, who="n", where="l"
            )
        )
        await asyncio.sleep(file_lock.POLL_SECONDS * 2)
        assert not discarding.done()
        # ... and its PACS took two more images before it refused again.
        again = hold_record.load(tmp_path, tid)
        assert again is not None
        hold_record.save(tmp_path, replace(again, stored_in_pacs=5))
    decided = await asyncio.wait_for(discarding, 10)

    assert decided.held.stored_in_pacs == 5
    assert decided.sender_told is False  # no credential here: the page says to call the ER
    assert hold_record.load(tmp_path, tid) is None
    assert not (state.folder(tmp_path) / f"{tid}.json").exists()
