"""The refusal of mixed patients names each patient and where their files are, summarised per
folder when a folder holds many."""

from __future__ import annotations

from pathlib import Path

from sending_site.patients import PatientFiles, by_patient, mixed_patients_message, where

JANE = ("ER-1", "", "DOE^JANE")
RICHARD = ("ER-2", "MERCY", "ROE^RICHARD")


def test_grouped_by_patient_in_the_order_met() -> None:
    pairs = [
        (RICHARD, Path("/disc/B/IM1")),
        (JANE, Path("/disc/A/IM1")),
        (RICHARD, Path("/disc/B/IM2")),
    ]
    assert by_patient(pairs) == [
        PatientFiles("ROE^RICHARD", "ER-2", "MERCY", (Path("/disc/B/IM1"), Path("/disc/B/IM2"))),
        PatientFiles("DOE^JANE", "ER-1", "", (Path("/disc/A/IM1"),)),
    ]


def test_a_few_files_are_named_and_many_counted_per_folder() -> None:
    paths = [Path("/disc/A/IM1"), Path("/disc/A/IM2")] + [
        Path(f"/disc/B/IM{i}") for i in range(120)
    ]
    assert where(paths) == "/disc/A/IM1, /disc/A/IM2, /disc/B (120 files)"


def test_many_folders_are_counted_past_five() -> None:
    paths = [Path(f"/disc/S{i}/IM1") for i in range(8)]
    assert where(paths) == (
        "/disc/S0/IM1, /disc/S1/IM1, /disc/S2/IM1, /disc/S3/IM1, /disc/S4/IM1, and 3 more folders"
    )


def test_the_message_names_each_patient_and_their_files_on_one_line() -> None:
    groups = by_patient(
        [(JANE, Path("/disc/A/IM1"))] + [(RICHARD, Path(f"/disc/B/IM{i}")) for i in range(4)]
    )
    assert mixed_patients_message(groups) == (
        "These files belong to 2 different patients: DOE, JANE (ID ER-1) in /disc/A/IM1; "
        "ROE, RICHARD (ID ER-2, issuer MERCY) in /disc/B (4 files). One transfer carries one "
        "patient: send each patient's images separately. Nothing was sent."
    )


def test_a_patient_without_name_or_id_is_still_shown() -> None:
    (nobody,) = by_patient([(("", "", ""), Path("/x/IM1"))])
    assert nobody.who() == "not given (ID not given)"
