"""The pure parts of the STOW-RS destination: batches, the Store Instances Response, the
sentences staff read, and the command that continues an interrupted redemption."""

from __future__ import annotations

from pathlib import Path

import pytest
from staged_files import ct_entry

from receiving_site import stow
from receiving_site.pacs import PacsAddress
from receiving_site.redeem import RedeemRequest
from receiving_site.settings import StowSettings
from receiving_site.staging import StagedObject
from receiving_site.stow import StowDestination, batches, failure_sentence, parse_response


def _item(index: int, size: int) -> StagedObject:
    entry = ct_entry(index, size)
    return StagedObject(entry, Path(f"IM{index:06d}.dcm"))


def _ref(uid: str, reason: int | None = None) -> dict[str, object]:
    item: dict[str, object] = {"00081155": {"vr": "UI", "Value": [uid]}}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


def test_batches_are_cut_by_count_and_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stow, "BATCH_IMAGES", 3)
    monkeypatch.setattr(stow, "BATCH_BYTES", 100)
    items = [_item(i, size) for i, size in enumerate([10, 10, 10, 10, 60, 50, 500, 1])]
    assert [[i.entry.index for i in b] for b in batches(items)] == [
        [0, 1, 2],
        [3, 4],
        [5],
        [6],  # bigger than a batch: alone
        [7],
    ]


def test_the_response_names_what_was_stored_and_what_failed() -> None:
    answer = {
        "00081199": {"vr": "SQ", "Value": [_ref("1.1"), _ref("1.2")]},
        "00081198": {"vr": "SQ", "Value": [_ref("1.3", 0xA700), _ref("1.4", 0x0111)]},
    }
    outcome = parse_response(answer)
    assert outcome.stored == {"1.1", "1.2", "1.4"}  # a duplicate is already stored
    assert outcome.failed == {"1.3": 0xA700}
    assert parse_response([answer]) == outcome  # some servers answer a one-item array


@pytest.mark.parametrize("answer", [None, "text", [], {"00081199": {"vr": "SQ"}}, {"x": 1}])
def test_an_answer_without_instances_stores_nothing(answer: object) -> None:
    outcome = parse_response(answer)
    assert (outcome.stored, outcome.failed) == (frozenset(), {})


def test_failures_read_as_sentences() -> None:
    assert failure_sentence(3, 240, 0xA700) == (
        "Image 3 of 240 was not stored: the server is out of space (reason 0xA700)."
    )
    assert failure_sentence(4, 240, 0xC123) == (
        "Image 4 of 240 was not stored: the server refused it (reason 0xC123)."
    )
    assert failure_sentence(5, 240, 0) == "Image 5 of 240 was not stored: the server refused it."
    assert failure_sentence(6, 240, None) == (
        "Image 6 of 240 was not confirmed as stored by the server."
    )


def test_the_resume_command_keeps_the_stow_destination_and_associations(
    tmp_path: Path,
) -> None:
    pacs = PacsAddress("ORTHANC", "10.0.0.5", 4242)
    base = RedeemRequest(relay="https://relay", credential="c", state_dir=tmp_path, pacs=pacs)
    credential = tmp_path / "stow-credential"
    to_stow = RedeemRequest(
        relay="https://relay",
        credential="c",
        state_dir=tmp_path,
        pacs=pacs,
        stow=StowDestination("https://pacs/dicom-web", credential),
    )
    assert "--associations" not in base.resume_command("T1")
    assert (
        "--pacs ORTHANC@10.0.0.5:4242 --stow https://pacs/dicom-web --stow-credential-file "
        f"{credential}"
    ) in to_stow.resume_command("T1")
    three = RedeemRequest(
        relay="https://relay", credential="c", state_dir=tmp_path, pacs=pacs, associations=3
    )
    assert "--associations 3" in three.resume_command("T1")


def test_the_settings_name_the_destination(tmp_path: Path) -> None:
    assert stow.from_settings(StowSettings()) is None
    given = StowSettings(url="https://pacs/dicom-web", credential_file=tmp_path / "secret")
    assert stow.from_settings(given) == StowDestination(
        "https://pacs/dicom-web", tmp_path / "secret"
    )
