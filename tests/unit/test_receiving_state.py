"""The trauma center's state folder (`receiving_site.state`): private, atomic files, and one
redemption id per code however many runs ask for it."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from receiving_site import errors, state
from transfer_codes.tokens import new_transfer_id


def key(transfer_id: str, data_key: bytes = b"k" * 32) -> state.SavedKey:
    return state.SavedKey(transfer_id, "https://relay.example", data_key, "St. Mary's", False, "7")


def test_a_saved_key_is_private_and_reads_back(tmp_path: Path) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, key(tid))
    path = tmp_path / "receiving" / f"{tid}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert state.load_key(tmp_path, tid) == key(tid)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_a_failed_key_write_leaves_the_earlier_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, key(tid, b"a" * 32))

    def disk_failure(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_failure)
        with pytest.raises(OSError, match="Input/output"):
            state.save_key(tmp_path, key(tid, b"b" * 32))

    assert state.load_key(tmp_path, tid).data_key == b"a" * 32
    assert [p.name for p in (tmp_path / "receiving").iterdir()] == [f"{tid}.json"]


def test_the_redemption_id_is_made_once_per_code_and_kept(tmp_path: Path) -> None:
    first = state.redemption_id(tmp_path, "7", "https://relay.example")
    assert len(first) == state.REDEMPTION_ID_BYTES
    assert state.redemption_id(tmp_path, "7", "https://relay.example") == first
    assert state.redemption_id(tmp_path, "8", "https://relay.example") != first
    path = tmp_path / "receiving" / "pending-7.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state.forget_pending(tmp_path, "7")
    assert state.redemption_id(tmp_path, "7", "https://relay.example") != first


def test_runs_started_together_share_one_redemption_id(tmp_path: Path) -> None:
    tid = new_transfer_id()
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: state.redemption_id(tmp_path, tid, "r"), range(32)))
    assert len(ids) == 1


@pytest.mark.parametrize("slot", ["../7", "7/..", "", "abc", "7 ", "²"])
def test_slots_are_only_locators_or_transfer_ids(tmp_path: Path, slot: str) -> None:
    with pytest.raises(ValueError, match="not a locator"):
        state.redemption_id(tmp_path, slot, "r")


def test_loading_an_unknown_transfer_says_to_use_the_code(tmp_path: Path) -> None:
    with pytest.raises(errors.ReceivingError, match="use its code instead"):
        state.load_key(tmp_path, new_transfer_id())
    with pytest.raises(errors.ReceivingError, match="is not a transfer id"):
        state.load_key(tmp_path, "../../etc/passwd")


def test_a_delivery_is_recorded_under_the_code_and_the_transfer(tmp_path: Path) -> None:
    tid = new_transfer_id()
    done = state.Delivery(tid, 3, 1200, "PACS@10.0.0.5:104", False, 1_700_000_000.0)
    assert state.delivery(tmp_path, "7") is None
    state.record_delivery(tmp_path, {"7", tid}, done)
    assert state.delivery(tmp_path, "7") == state.delivery(tmp_path, tid) == done
    with pytest.raises(ValueError, match="not a locator"):
        state.delivery(tmp_path, "../7")


def test_a_hold_is_kept_with_the_key_and_forgotten_with_it(tmp_path: Path) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, key(tid))
    assert state.held_for(tmp_path, tid) is None
    state.mark_held(tmp_path, tid, state.HeldFor("PACS@10.0.0.5:104", "TRAUMARELAY"))
    assert state.held_for(tmp_path, tid) == state.HeldFor("PACS@10.0.0.5:104", "TRAUMARELAY")
    state.forget_key(tmp_path, tid)
    assert state.held_for(tmp_path, tid) is None
    assert list((tmp_path / "receiving").iterdir()) == []


def test_the_slot_of_a_transfer_is_its_codes_once_redeemed_here(tmp_path: Path) -> None:
    tid = new_transfer_id()
    assert state.slot_of(tmp_path, tid) == tid
    state.save_key(tmp_path, key(tid))
    assert state.slot_of(tmp_path, tid) == "7"
    with pytest.raises(errors.ReceivingError, match="not a transfer id"):
        state.slot_of(tmp_path, "../../etc")


def test_the_key_of_a_transfer_redeemed_by_its_code_is_found_by_its_qrs_slot(
    tmp_path: Path,
) -> None:
    tid = new_transfer_id()
    state.save_key(tmp_path, key(tid))  # redeemed with the code of locator 7
    assert state.key_of_slot(tmp_path, "7", "https://relay.example") == key(tid)
    assert state.key_of_slot(tmp_path, tid, "https://relay.example") == key(tid)  # the QR's
    assert state.key_of_slot(tmp_path, tid, "https://other.example") is None
    assert state.key_of_slot(tmp_path, new_transfer_id(), "https://relay.example") is None


def test_a_key_forgotten_while_the_slots_are_searched_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run delivered (or a nurse discarded) a transfer between the listing of the state
    folder and the reading of its key: the search goes on to the others."""
    tid, gone = new_transfer_id(), new_transfer_id()
    state.save_key(tmp_path, key(tid))
    listed = state.unfinished(tmp_path)
    monkeypatch.setattr(state, "unfinished", lambda state_dir: [gone, *listed])
    assert state.key_of_slot(tmp_path, "7", "https://relay.example") == key(tid)
