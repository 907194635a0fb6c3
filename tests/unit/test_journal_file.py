"""The transfer journal's file: what `save` writes is what `dataclasses.asdict` gives (the data
key in base64), and `load` reads it back whole."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from sending_site import journal
from sending_site.journal import JournalObject, TransferJournal
from transfer_codes.tokens import new_transfer_id
from transfer_codes.wire import b64encode_text


def _record() -> TransferJournal:
    return TransferJournal(
        transfer_id=new_transfer_id(),
        relay="https://relay.example",
        recipient="trauma-center",
        data_key=bytes(range(32)),
        locator=7,
        code="ABCD-EFGH-J",
        capability="capability",
        authorization_token="token",
        expires_at=1_800_000_000.5,
        objects=[JournalObject(i, f"/spool/{i}.dcm", 1000 + i, 10**18 + i) for i in range(3)],
        phone_key="f" * 43,
        patient="p" * 64,
        studies=["s" * 64],
        created_at=1_799_000_000.25,
        study_description="CT HEAD",
        series_count=2,
        issued_at=[1_799_000_001.0],
    )


def test_the_file_holds_every_field_as_asdict_gives_it() -> None:
    record = _record()
    expected = dataclasses.asdict(record)
    expected["data_key"] = b64encode_text(record.data_key)
    assert journal.as_json(record) == expected


def test_a_saved_journal_loads_back_the_same(tmp_path: Path) -> None:
    record = _record()
    journal.save(tmp_path, record)
    assert journal.load(tmp_path, record.transfer_id) == record
    saved = tmp_path / "sending" / f"{record.transfer_id}.json"
    assert json.loads(saved.read_text())["objects"][2] == {
        "index": 2,
        "path": "/spool/2.dcm",
        "size": 1002,
        "mtime_ns": 10**18 + 2,
    }


def test_a_push_saving_its_progress_keeps_a_code_reissued_meanwhile(tmp_path: Path) -> None:
    """A push holds its own copy of the journal; Give a new code changes the one on disk while
    the push runs. The push's next save keeps the new code and adds its progress."""
    at_start = _record()
    journal.save(tmp_path, at_start)
    reissued = journal.change_code(
        tmp_path, at_start.transfer_id, code="NEWC-ODE0-1", capability="new capability"
    )
    assert (reissued.code, reissued.issued_at) == ("NEWC-ODE0-1", at_start.issued_at)
    reissued = journal.change_code(
        tmp_path,
        at_start.transfer_id,
        code="NEWC-ODE0-1",
        capability="new capability",
        issued_at=1_799_000_500.0,
    )
    progress = dataclasses.replace(at_start, objects=at_start.objects[:2], done=True)
    saved = journal.save_from_push(tmp_path, progress)
    on_disk = journal.load(tmp_path, at_start.transfer_id)
    assert saved == on_disk
    assert (on_disk.code, on_disk.capability) == ("NEWC-ODE0-1", "new capability")
    assert on_disk.issued_at == [1_799_000_001.0, 1_799_000_500.0]
    assert (on_disk.objects, on_disk.done) == (at_start.objects[:2], True)  # the push's


def test_a_code_change_keeps_the_progress_a_push_saved_meanwhile(tmp_path: Path) -> None:
    record = _record()
    journal.save(tmp_path, record)
    journal.save_from_push(tmp_path, dataclasses.replace(record, done=True))
    changed = journal.change_code(tmp_path, record.transfer_id, code="X", capability="Y")
    assert changed.done
    assert changed == journal.load(tmp_path, record.transfer_id)


def test_a_push_saving_after_a_revoke_does_not_bring_the_transfer_back(tmp_path: Path) -> None:
    record = _record()
    journal.save(tmp_path, record)
    journal.give_up(tmp_path, record.transfer_id, "revoked from this site")
    journal.save_from_push(tmp_path, record)  # its copy: not done, not given up
    on_disk = journal.load(tmp_path, record.transfer_id)
    assert (on_disk.done, on_disk.abandoned) == (True, "revoked from this site")


def test_the_trauma_centers_name_is_kept_once_and_a_push_saving_keeps_it(tmp_path: Path) -> None:
    """The console keeps the name the relay shows for the trauma center; the push's copy of
    the journal, saved later, lacks it and must not drop it."""
    record = _record()
    journal.save(tmp_path, record)
    shown = "County Level I Trauma Center"
    kept = journal.remember_recipient(tmp_path, record, shown)
    assert kept == journal.load(tmp_path, record.transfer_id)
    assert kept.recipient_display_name == shown
    assert journal.remember_recipient(tmp_path, kept, "") == kept  # the relay said none
    journal.save_from_push(tmp_path, dataclasses.replace(record, done=True))
    on_disk = journal.load(tmp_path, record.transfer_id)
    assert (on_disk.recipient_display_name, on_disk.done) == (shown, True)


def test_a_new_transfer_is_saved_as_the_push_made_it(tmp_path: Path) -> None:
    record = _record()
    assert journal.save_from_push(tmp_path, record) == record
    assert journal.load(tmp_path, record.transfer_id) == record
    assert journal.transfer_ids(tmp_path) == [record.transfer_id]  # the lock file is not one


def test_a_save_waits_for_the_lock_a_code_change_holds(tmp_path: Path) -> None:
    """The journals' lock is what keeps a push's save and a re-issue apart: a save started
    while the lock is held writes only once it is released, and then keeps the new code."""
    record = _record()
    journal.save(tmp_path, record)
    saved = threading.Event()

    def push_saves() -> None:
        journal.save_from_push(tmp_path, dataclasses.replace(record, done=True))
        saved.set()

    with journal._locked(tmp_path):  # as `change_code` holds it
        saver = threading.Thread(target=push_saves)
        saver.start()
        assert not saved.wait(0.5)  # waits for the lock, however long it is held
        changed = dataclasses.replace(journal.load(tmp_path, record.transfer_id), code="NEW")
        journal._write(tmp_path, changed)
    saver.join(timeout=60)
    assert saved.is_set()
    on_disk = journal.load(tmp_path, record.transfer_id)
    assert (on_disk.code, on_disk.done) == ("NEW", True)


def test_a_journal_from_before_codes_were_confirmed_reads_back_confirmed(tmp_path: Path) -> None:
    record = _record()
    journal.save(tmp_path, record)
    saved = tmp_path / "sending" / f"{record.transfer_id}.json"
    body = json.loads(saved.read_text())
    del body["code_confirmed"]
    saved.write_text(json.dumps(body))
    assert journal.load(tmp_path, record.transfer_id) == record
    assert record.code_confirmed


def test_a_code_drawn_is_unconfirmed_until_its_issue_time_is_recorded(tmp_path: Path) -> None:
    """A re-issue saves the code it draws before the relay answers: not confirmed, and a push
    saving meanwhile keeps it so. Put back, the code before it is as it stood; recorded as
    issued (the relay took it), it is confirmed."""
    at_start = _record()
    journal.save(tmp_path, at_start)
    drawn = journal.change_code(tmp_path, at_start.transfer_id, code="NEWC-ODE0-1", capability="c")
    assert not drawn.code_confirmed
    journal.save_from_push(tmp_path, dataclasses.replace(at_start, done=True))
    assert not journal.load(tmp_path, at_start.transfer_id).code_confirmed
    put_back = journal.change_code(
        tmp_path,
        at_start.transfer_id,
        code=at_start.code,
        capability=at_start.capability,
        confirmed=True,
        only_if="NEWC-ODE0-1",
    )
    assert (put_back.code, put_back.code_confirmed) == (at_start.code, True)
    assert put_back.issued_at == at_start.issued_at
    drawn = journal.change_code(tmp_path, at_start.transfer_id, code="NEWC-ODE0-2", capability="d")
    taken = journal.change_code(
        tmp_path,
        at_start.transfer_id,
        code="NEWC-ODE0-2",
        capability="d",
        issued_at=1_799_000_500.0,
        only_if="NEWC-ODE0-2",
    )
    assert taken.code_confirmed
    assert taken.issued_at == [1_799_000_001.0, 1_799_000_500.0]
