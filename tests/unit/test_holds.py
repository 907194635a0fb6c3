"""The message of a study held before the PACS (`receiving_site.holds`): both sides in aligned
columns, then what to do, the safest first and `--skip-identity-check` last."""

from __future__ import annotations

from receiving_site.holds import Commands, Hold, Kind, Person, explain, table

OURS = Person("ER-12345", "DOE^JANE", "19850214", "F")
THEIRS = Person("ER-12345", "ROE^RICHARD", "19600101", "M")
# again, confirm, other_record, new_patient, review, skip
COMMANDS = Commands(*(f"CMD-{n}" for n in ("AGAIN", "CONFIRM", "OTHER", "NEW", "REVIEW", "SKIP")))


def test_both_sides_are_aligned_and_each_difference_is_marked() -> None:
    assert table(OURS, THEIRS, "St. Mary's ED") == [
        "              Sent by St. Mary's ED  In the PACS",
        "  Patient ID  ER-12345               ER-12345",
        "  Name        DOE, JANE              ROE, RICHARD  <- differs",
        "  Birth date  1985-02-14             1960-01-01    <- differs",
        "  Sex         female                 male          <- differs",
    ]


def test_unknown_values_are_no_difference_and_control_characters_are_not_shown() -> None:
    theirs = Person("ER-12345", "doe^jane^", "", "\x1b[2J")
    assert table(OURS, theirs, "ER")[2:] == [
        "  Name        DOE, JANE   doe, jane",
        "  Birth date  1985-02-14  not given",
        "  Sex         female      ?[2J         <- differs",
    ]


def _steps(message: str) -> list[str]:
    return [line.strip() for line in message.splitlines() if line.strip().startswith("CMD-")]


def test_a_patient_id_of_someone_else_offers_the_record_remedies_then_review_then_skip() -> None:
    hold = Hold(
        Kind.PATIENT_ID,
        "The PACS already has patient ID ER-12345 under a different name",
        THEIRS,
        True,
    )
    message = explain(hold, OURS, "St. Mary's ED", COMMANDS)
    lines = message.splitlines()
    assert lines[0] == (
        "The PACS already has patient ID ER-12345 under a different name; the study was held "
        "for review. Nothing was stored."
    )
    assert "ROE, RICHARD" in message
    assert "1. Check the patient in front of you against both columns." in message
    assert _steps(message) == ["CMD-CONFIRM", "CMD-OTHER", "CMD-REVIEW", "CMD-SKIP"]
    assert "Only after a person has reviewed this" in lines[-2]


def test_a_hold_the_skip_does_not_lift_never_offers_it() -> None:
    hold = Hold(Kind.LOCAL_RECORD, "The PACS's patient MRN-7 has another name", THEIRS)
    assert _steps(explain(hold, OURS, "ER", COMMANDS)) == ["CMD-CONFIRM", "CMD-REVIEW"]


def test_a_study_under_another_patient_sends_staff_to_the_sender_not_to_a_record() -> None:
    hold = Hold(
        Kind.STUDY, "The PACS already has this study under a different patient", THEIRS, True
    )
    message = explain(hold, OURS, "ER", COMMANDS)
    assert "call the sending hospital" in message
    assert _steps(message) == ["CMD-REVIEW", "CMD-SKIP"]


def test_a_pacs_that_could_not_be_asked_first_asks_for_queries_then_the_same_again() -> None:
    hold = Hold(Kind.UNCHECKED, "The PACS X did not answer", None, True)
    message = explain(hold, OURS, "ER", COMMANDS)
    assert "Sent by" not in message  # no PACS side to show
    assert "1. Ask the PACS administrators to let this system query the PACS" in message
    assert _steps(message) == ["CMD-AGAIN", "CMD-REVIEW", "CMD-SKIP"]
