"""The trauma center's local record of what it delivered: recognised by code or QR, holding
neither the code nor any key."""

from __future__ import annotations

from pathlib import Path

from receiving_site import delivered
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode

TRANSFER = "0123456789ABCDEFGHJKMNPQ"
RELAY = "https://relay.example"


def test_a_delivered_code_is_found_by_the_code_and_by_the_transfer(tmp_path: Path) -> None:
    code = RedemptionCode.generate(7)
    delivered.note_redeemed(tmp_path, TRANSFER, RELAY, code)
    assert delivered.find(tmp_path, RELAY, code) is None  # redeemed, not yet delivered
    done = delivered.Delivered(TRANSFER, 1_800_000_000.0, "PACS@10.0.0.5:104", 240)
    delivered.note_delivered(tmp_path, RELAY, done)

    assert delivered.find(tmp_path, RELAY, code) == done
    assert delivered.find_transfer(tmp_path, TRANSFER) == done
    assert delivered.find(tmp_path, RELAY, Capability.generate(TRANSFER)) == done
    # Another code with the same locator, or the same code on another relay: not this one.
    assert delivered.find(tmp_path, RELAY, RedemptionCode.generate(7)) is None
    assert delivered.find(tmp_path, "https://other.example", code) is None

    (record,) = (tmp_path / "receiving" / "history").iterdir()
    text = record.read_text()
    assert code.compact() not in text
    assert code.grouped() not in text
    assert oct(record.stat().st_mode & 0o777) == "0o600"


def test_an_unreadable_record_is_as_if_absent(tmp_path: Path) -> None:
    code = RedemptionCode.generate(9)
    delivered.note_redeemed(tmp_path, TRANSFER, RELAY, code)
    (tmp_path / "receiving" / "history" / f"{TRANSFER}.json").write_text("{not json")
    assert delivered.find(tmp_path, RELAY, code) is None
    assert delivered.find_transfer(tmp_path, TRANSFER) is None
