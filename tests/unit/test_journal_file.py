"""The transfer journal's file: what `save` writes is what `dataclasses.asdict` gives (the data
key in base64), and `load` reads it back whole."""

from __future__ import annotations

import dataclasses
import json
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
