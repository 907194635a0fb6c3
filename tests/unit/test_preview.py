"""The study preview staff check against the patient in front of them."""

from __future__ import annotations

from dataclasses import replace

from receiving_site.preview import date, describe, person_name
from transfer_codes.manifest import SeriesSummary, StudySummary

SUMMARY = StudySummary(
    patient_name="DOE^JANE^^DR",
    patient_id="ER-12345",
    issuer_of_patient_id="ER-GENERAL",
    patient_birth_date="19850214",
    patient_sex="F",
    study_instance_uid="1.2.3",
    study_date="20250101",
    study_description="CT TRAUMA PANSCAN",
    accession_number="A1",
    modalities=("CT", "SR"),
    series_count=3,
    instance_count=1200,
    sending_site="St. Mary's ER",
    break_glass=False,
)


def test_the_preview_names_patient_study_and_sender() -> None:
    assert describe(SUMMARY) == [
        "Patient:  DOE, JANE, born 1985-02-14, female (ER patient ID ER-12345, issuer ER-GENERAL)",
        "Study:    CT TRAUMA PANSCAN, CT/SR, 2025-01-01, accession A1 (3 series, 1200 images)",
        "Sent by:  St. Mary's ER; authorized by the patient or family",
        "Check this against the patient in front of you.",
    ]


def test_break_glass_is_marked() -> None:
    lines = describe(replace(SUMMARY, break_glass=True))
    assert lines[2] == (
        "Sent by:  St. Mary's ER; BREAK-GLASS: authorized by a clinician, not by the patient "
        "or family"
    )


def test_break_glass_the_relay_knows_of_is_marked_too() -> None:
    """Added by the ER after the summary was sealed, which then says the patient or family."""
    lines = describe(SUMMARY, break_glass=True)
    assert lines[2].startswith("Sent by:  St. Mary's ER; BREAK-GLASS: authorized by a clinician")


def test_what_the_sender_did_not_know_is_said_so() -> None:
    unknown = replace(
        SUMMARY,
        patient_name="",
        patient_birth_date="",
        patient_sex="",
        issuer_of_patient_id="",
        study_description="",
        accession_number="",
        modalities=(),
        series_count=0,
        instance_count=0,
    )
    assert describe(unknown)[:2] == [
        "Patient:  not given, born not given, not given (ER patient ID ER-12345)",
        "Study:    no description, modality not given, 2025-01-01 (images)",
    ]


def test_every_series_the_study_time_and_the_senders_display_name() -> None:
    summary = replace(
        SUMMARY,
        series=(
            SeriesSummary("HEAD WO", "CT", 200, "5"),
            SeriesSummary("", "", 1, ""),
        ),
        series_count=3,
        study_time="143207.5",
        sending_site="st-mary-er",
    )
    assert describe(summary, sender="St. Mary's ED") == [
        "Patient:  DOE, JANE, born 1985-02-14, female (ER patient ID ER-12345, issuer ER-GENERAL)",
        "Study:    CT TRAUMA PANSCAN, CT/SR, 2025-01-01 14:32, accession A1 (3 series, 1200 "
        "images)",
        "Series:   HEAD WO, CT, 200 images, 5 mm slices",
        "          no description, modality not given, 1 image",
        "          and 1 more series",
        "Sent by:  St. Mary's ED (st-mary-er); authorized by the patient or family",
        "Check this against the patient in front of you.",
    ]


def test_names_and_dates() -> None:
    assert person_name("DOE^JANE=ドウ^ジェーン") == "DOE, JANE"
    assert person_name("^^") == "not given"
    assert person_name("ANON") == "ANON"
    assert date("2025") == "2025"


def test_files_left_out_at_the_er_are_said_before_the_check() -> None:
    lines = describe(replace(SUMMARY, omitted=("IM0003", "IM0007"), omitted_count=2))
    assert lines[-2:] == [
        "INCOMPLETE: 2 files were left out at the ER (damaged): IM0003, IM0007.",
        "Check this against the patient in front of you.",
    ]


def test_more_left_out_than_named_are_counted() -> None:
    lines = describe(replace(SUMMARY, omitted=("IM0003",), omitted_count=40))
    assert "INCOMPLETE: 40 files were left out at the ER (damaged): IM0003 and 39 more." in lines
    one = describe(replace(SUMMARY, omitted=("IM0003",), omitted_count=1))
    assert "INCOMPLETE: 1 file was left out at the ER (damaged): IM0003." in one


def test_a_complete_study_has_no_warning() -> None:
    assert not any(line.startswith("INCOMPLETE") for line in describe(SUMMARY))


def test_a_study_sent_while_still_arriving_says_its_images_are_counted_later() -> None:
    growing = replace(SUMMARY, instance_count=0, series_count=0, series=())
    lines = describe(growing)
    assert lines[1].endswith("(images)")
    assert lines[2] == (
        "Images:   the ER started sending while the study was still arriving; the images are "
        "counted once all have come."
    )
    assert not any(line.startswith("Images:") for line in describe(SUMMARY))
