"""What push shows before sending, and what counts as yes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sending_site.collect import Collection, Instance
from sending_site.destinations import Destination
from sending_site.outgoing import confirmed, describe, question

TO = Destination("county-trauma", "County Trauma Center")


def _instance(n: int, series: str = "1.2.3.1", **changes: str) -> Instance:
    base = Instance(
        path=Path(f"/disc/IM{n:04d}"),
        size=500_000,
        sop_instance_uid=f"1.2.3.1.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        series_instance_uid=series,
        study_instance_uid="1.2.3",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        patient_id="ER-1",
        issuer_of_patient_id="",
        patient_name="DOE^JANE",
        patient_birth_date="19850214",
        patient_sex="F",
        study_date="20250101",
        study_description="CT HEAD",
        accession_number="",
        modality="CT",
    )
    return replace(base, **changes)


def test_who_what_and_how_much() -> None:
    c = Collection(instances=[_instance(1), _instance(2), _instance(3, series="1.2.3.2")])
    assert describe(c, TO) == [
        "To:       county-trauma (County Trauma Center)",
        "Patient:  DOE, JANE, born 1985-02-14 (ID ER-1)",
        "Study:    CT HEAD, 2025-01-01",
        "Images:   2 series, 3 images (1.5 MB)",
    ]
    assert question(TO) == "Send this study to County Trauma Center? [y/N] "


def test_each_study_is_listed_and_left_out_files_are_said() -> None:
    c = Collection(
        instances=[
            _instance(1, study_description=""),
            _instance(2, series="9.9", study_description="CT C-SPINE", study_date="20250102"),
        ],
        omitted=[(Path(f"/disc/BAD{i}"), "cut off") for i in range(12)],
    )
    lines = describe(c, TO)
    assert lines[2:4] == [
        "Study:    no description, 2025-01-01",
        "Study:    CT C-SPINE, 2025-01-02",
    ]
    assert lines[-1] == (
        "LEFT OUT: 12 damaged file(s), not sent: BAD0, BAD1, BAD2, BAD3, BAD4, BAD5, BAD6, "
        "BAD7, BAD8, BAD9 and 2 more"
    )


@pytest.mark.parametrize(("answer", "sends"), [
    ("y\n", True), ("YES\n", True), (" Yes ", True),
    ("n\n", False), ("\n", False), ("", False), ("yep\n", False), ("sure\n", False),
])  # fmt: skip
def test_only_y_or_yes_sends(answer: str, sends: bool) -> None:
    assert confirmed(answer) is sends
