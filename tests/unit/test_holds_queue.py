"""The holds queue's pure part: which choices each reason offers, the safest first, and the
redemption each choice resumes (the options the command line's printed command adds)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from held_studies import held_study

from receiving_site import errors
from receiving_site.hold_record import HeldStudy, Reason
from receiving_site.holds_queue import Choice, Decision, Place, choices, request
from receiving_site.settings import PacsSettings, ReceiverSettings, StowSettings
from receiving_site.stow import StowDestination

PLACE = Place(Path("/state"), "credential")
TRANSFER = "1M3W7HQFHZ24VDHTMFPH5W6Y"


def _held(reason: Reason, *, skippable: bool = False, local: str | None = None) -> HeldStudy:
    return held_study(
        TRANSFER,
        reason,
        skippable=skippable,
        pacs="PACS@127.0.0.1:4242",
        calling_ae_title="TRAUMA1",
        local_patient_id=local,
        local_issuer="REGIONAL" if local else "",
    )


@pytest.mark.parametrize(
    ("reason", "skippable", "expected"),
    [
        (
            Reason.PATIENT_ID,
            True,
            [
                Choice.CONFIRM_LOCAL_RECORD,
                Choice.OTHER_RECORD,
                Choice.SAVE_TO_FOLDER,
                Choice.STORE_ANYWAY,
                Choice.DISCARD,
            ],
        ),
        (Reason.STUDY, True, [Choice.SAVE_TO_FOLDER, Choice.STORE_ANYWAY, Choice.DISCARD]),
        (
            Reason.NEW_LOCAL,
            False,
            [
                Choice.NEW_LOCAL_PATIENT,
                Choice.OTHER_RECORD,
                Choice.SAVE_TO_FOLDER,
                Choice.DISCARD,
            ],
        ),
        (
            Reason.UNCHECKED,
            True,
            [Choice.TRY_AGAIN, Choice.SAVE_TO_FOLDER, Choice.STORE_ANYWAY, Choice.DISCARD],
        ),
        (Reason.PACS_REFUSED, False, [Choice.TRY_AGAIN, Choice.SAVE_TO_FOLDER, Choice.DISCARD]),
        (Reason.MIXED_PATIENTS, False, [Choice.DISCARD]),
    ],
)
def test_each_reason_offers_its_choices_safest_first(
    reason: Reason, skippable: bool, expected: list[Choice]
) -> None:
    assert choices(_held(reason, skippable=skippable)) == expected


def test_each_choice_resumes_the_redemption_as_the_printed_command_would() -> None:
    held = _held(Reason.PATIENT_ID, skippable=True)

    anyway = request(held, Decision(Choice.STORE_ANYWAY), PLACE, "https://relay.test")
    assert anyway.resume == TRANSFER
    assert (anyway.skip_identity_check, anyway.local_patient_id) == (True, None)
    assert str(anyway.pacs) == "PACS@127.0.0.1:4242"
    assert anyway.pacs is not None
    assert anyway.pacs.calling_ae_title == "TRAUMA1"

    confirm = request(held, Decision(Choice.CONFIRM_LOCAL_RECORD), PLACE, "https://relay.test")
    assert (confirm.local_patient_id, confirm.confirm_local_record) == ("ER-12345", True)
    assert not confirm.skip_identity_check

    other = request(
        held, Decision(Choice.OTHER_RECORD, "MRN-9", "REGIONAL"), PLACE, "https://relay.test"
    )
    assert (other.local_patient_id, other.local_issuer) == ("MRN-9", "REGIONAL")
    assert (other.new_local_patient, other.confirm_local_record) == (False, False)

    folder = request(
        held, Decision(Choice.SAVE_TO_FOLDER, folder=Path("/review")), PLACE, "https://x"
    )
    assert (folder.pacs, folder.out) == (None, Path("/review"))


def test_a_choice_the_hold_does_not_offer_is_refused() -> None:
    mixed = _held(Reason.MIXED_PATIENTS)
    for choice in (Choice.STORE_ANYWAY, Choice.SAVE_TO_FOLDER, Choice.CONFIRM_LOCAL_RECORD):
        with pytest.raises(errors.HoldChoiceRefused):
            request(mixed, Decision(choice, folder=Path("/x")), PLACE, "https://relay.test")
    with pytest.raises(errors.HoldChoiceRefused, match="record number"):
        request(_held(Reason.NEW_LOCAL), Decision(Choice.NEW_LOCAL_PATIENT), PLACE, "https://x")


def test_what_staff_checked_about_the_local_record_goes_with_each_choice() -> None:
    """Held for the study (the PACS has it under another patient) after staff said MRN-200 was
    just given to this patient: storing it anyway, or trying again, says so again; another
    record number does not inherit it."""
    held = replace(_held(Reason.STUDY, skippable=True, local="MRN-200"), new_local_patient=True)
    relay = "https://relay.test"
    anyway = request(held, Decision(Choice.STORE_ANYWAY), PLACE, relay)
    assert (anyway.local_patient_id, anyway.local_issuer) == ("MRN-200", "REGIONAL")
    assert (anyway.new_local_patient, anyway.confirm_local_record) == (True, False)
    assert anyway.skip_identity_check
    assert "--new-local-patient" in anyway.resume_command(TRANSFER)

    ticked = replace(_held(Reason.UNCHECKED, local="MRN-300"), confirm_local_record=True)
    again = request(ticked, Decision(Choice.TRY_AGAIN), PLACE, relay)
    assert (again.confirm_local_record, again.new_local_patient) == (True, False)

    new = replace(_held(Reason.NEW_LOCAL, local="MRN-300"), confirm_local_record=True)
    other = request(new, Decision(Choice.OTHER_RECORD, "MRN-9", "REGIONAL"), PLACE, relay)
    assert (other.confirm_local_record, other.new_local_patient) == (False, False)
    same = request(new, Decision(Choice.NEW_LOCAL_PATIENT, "MRN-300"), PLACE, relay)
    assert (same.confirm_local_record, same.new_local_patient) == (True, True)

    folder = request(held, Decision(Choice.SAVE_TO_FOLDER, folder=Path("/r")), PLACE, relay)
    assert (folder.new_local_patient, folder.local_patient_id) == (False, None)


def test_a_choice_stores_as_the_agent_is_set_to() -> None:
    """STOW-RS, C-STORE associations, as they arrive: what the agent's settings say, into the
    PACS; a review copy goes to a folder only."""
    dicomweb = StowDestination("https://pacs.test/dicom-web", Path("/etc/stow-token"))
    place = replace(
        PLACE, stow=dicomweb, associations=2, as_they_arrive=True, stow_pacs="PACS@127.0.0.1:4242"
    )
    held = _held(Reason.PATIENT_ID, skippable=True)

    anyway = request(held, Decision(Choice.STORE_ANYWAY), place, "https://relay.test")
    assert (anyway.stow, anyway.associations, anyway.as_they_arrive) == (dicomweb, 2, True)
    command = anyway.resume_command(TRANSFER)
    assert "--stow https://pacs.test/dicom-web --stow-credential-file /etc/stow-token" in command

    folder = request(held, Decision(Choice.SAVE_TO_FOLDER, folder=Path("/r")), place, "https://x")
    assert (folder.stow, folder.pacs) == (None, None)


def test_a_study_held_for_another_pacs_is_stored_there_by_c_store() -> None:
    """The settings' STOW-RS service belongs to the PACS they name: a study a run held while
    checking and storing into another PACS (`redeem --pacs`) goes back to that PACS, by
    C-STORE, not into a PACS its patient was never checked against."""
    dicomweb = StowDestination("https://pacs.test/dicom-web", None)
    held = _held(Reason.PATIENT_ID, skippable=True)  # PACS@127.0.0.1:4242
    for elsewhere in ("PACS@127.0.0.1:104", "OTHER@127.0.0.1:4242", "PACS@10.0.0.9:4242", ""):
        place = replace(PLACE, stow=dicomweb, stow_pacs=elsewhere)
        anyway = request(held, Decision(Choice.STORE_ANYWAY), place, "https://relay.test")
        assert (anyway.stow, str(anyway.pacs)) == (None, "PACS@127.0.0.1:4242"), elsewhere
        assert "--stow" not in anyway.resume_command(TRANSFER)


def test_the_place_pairs_stow_rs_with_the_pacs_the_settings_name() -> None:
    settings = ReceiverSettings(
        pacs=PacsSettings(ae_title="PACS", host="127.0.0.1", port=4242, associations=3),
        stow=StowSettings(url="https://pacs.test/dicom-web"),
    )
    place = Place.of(settings, "credential")
    assert (place.stow_pacs, place.associations) == ("PACS@127.0.0.1:4242", 3)
    held = _held(Reason.PATIENT_ID, skippable=True)
    anyway = request(held, Decision(Choice.STORE_ANYWAY), place, "https://relay.test")
    assert anyway.stow == StowDestination("https://pacs.test/dicom-web", None)

    no_pacs = Place.of(replace(settings, pacs=PacsSettings()), "credential")
    assert no_pacs.stow_pacs == ""
    assert request(held, Decision(Choice.STORE_ANYWAY), no_pacs, "https://x").stow is None
