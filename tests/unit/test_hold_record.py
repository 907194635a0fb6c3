"""Why a study is held, kept beside its key (`receiving_site.hold_record`): private, read back
whole, listed the longest waiting first, and gone with the key."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

from held_studies import held_study

from receiving_site import hold_record, state
from receiving_site.hold_record import HeldStudy
from receiving_site.holds import Person
from transfer_codes.tokens import new_transfer_id


def _held(transfer_id: str, at: float) -> HeldStudy:
    return held_study(
        transfer_id,
        skippable=True,
        break_glass=True,
        theirs=Person("ER-12345", "ROE^RICHARD", "19700301", "M"),
        at=at,
    )


def _key(transfer_id: str) -> state.SavedKey:
    return state.SavedKey(transfer_id, "https://relay.example", b"k" * 32, "St. Mary's", True)


def test_a_hold_reads_back_whole_and_private(tmp_path: Path) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, _key(tid))
    held = replace(_held(tid, 100.0), local_patient_id="MRN-1", review_copy="/review/x")
    hold_record.save(tmp_path, held)

    assert hold_record.load(tmp_path, tid) == held
    path = tmp_path / "receiving" / f"hold-{tid}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_queue_lists_the_longest_waiting_first_and_only_what_is_still_held(
    tmp_path: Path,
) -> None:
    later, earlier, delivered = new_transfer_id(), new_transfer_id(), new_transfer_id()
    for tid, at in ((later, 300.0), (earlier, 100.0), (delivered, 200.0)):
        state.save_key(tmp_path, _key(tid))
        hold_record.save(tmp_path, _held(tid, at))

    state.forget_key(tmp_path, delivered)  # delivered: the hold goes with the key

    assert [h.transfer_id for h in hold_record.held_studies(tmp_path)] == [earlier, later]
    assert hold_record.load(tmp_path, delivered) is None
    assert not (tmp_path / "receiving" / f"hold-{delivered}.json").exists()
    assert hold_record.load(tmp_path, "../../etc/passwd") is None


def test_a_hold_saved_before_its_later_fields_reads_back(
    tmp_path: Path,
) -> None:
    """A hold file written by an earlier version (no `confirm_local_record`,
    `new_local_patient`, `stored_in_pacs`) is still listed, as if neither had been said and
    nothing stored."""
    tid = new_transfer_id()
    state.save_key(tmp_path, _key(tid))
    held = replace(_held(tid, 100.0), local_patient_id="MRN-1", new_local_patient=True)
    hold_record.save(tmp_path, replace(held, stored_in_pacs=6))
    assert hold_record.load(tmp_path, tid) == replace(held, stored_in_pacs=6)
    path = tmp_path / "receiving" / f"hold-{tid}.json"
    body = json.loads(path.read_text("utf-8"))
    assert (body["new_local_patient"], body["stored_in_pacs"]) == (True, 6)
    del body["confirm_local_record"], body["new_local_patient"], body["stored_in_pacs"]
    path.write_text(json.dumps(body), "utf-8")

    assert hold_record.load(tmp_path, tid) == replace(held, new_local_patient=False)


def test_what_resolved_a_hold_outlives_it_and_names_no_patient(tmp_path: Path) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, _key(tid))
    hold_record.save(tmp_path, _held(tid, 100.0))
    resolved = hold_record.Resolved(tid, "hold-store-anyway", "nurse.joy", 200.0, instances=3)
    hold_record.save_resolved(tmp_path, resolved)
    state.forget_key(tmp_path, tid)  # stored: the hold goes with the key

    assert hold_record.load(tmp_path, tid) is None
    assert hold_record.resolved(tmp_path, tid) == resolved
    path = tmp_path / "receiving" / f"resolved-{tid}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text("utf-8"))) == {
        "transfer_id",
        "action",
        "who",
        "at",
        "instances",
    }
    assert hold_record.resolved(tmp_path, new_transfer_id()) is None  # never resolved here
    assert hold_record.resolved(tmp_path, "../../etc/passwd") is None  # no transfer id
