"""The series the study summary lists, as the sending site derives them from its files."""

from __future__ import annotations

from pathlib import Path

from sending_site.collect import Instance, series_summaries
from transfer_codes.manifest import MAX_SERIES, SeriesSummary


def instance(series: str, number: int | None, thickness: str = "", **extra: str) -> Instance:
    fields = {
        "path": Path(f"/disc/{series}"),
        "size": 1,
        "sop_instance_uid": "1.2",
        "sop_class_uid": "1.2",
        "series_instance_uid": series,
        "study_instance_uid": "1.2",
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
        "patient_id": "P",
        "issuer_of_patient_id": "",
        "patient_name": "DOE^JANE",
        "patient_birth_date": "",
        "patient_sex": "",
        "study_date": "",
        "study_description": "",
        "accession_number": "",
        "modality": "CT",
        "series_description": f"SERIES {series}",
        "series_number": number,
        "slice_thickness": thickness,
        **extra,
    }
    return Instance(**fields)  # type: ignore[arg-type]


def test_series_in_series_number_order_with_their_image_counts() -> None:
    found = series_summaries(
        [
            instance("1.3", 3, "5"),
            instance("1.9", None),
            instance("1.2", 2, "0.625"),
            instance("1.3", 3, "5"),
            instance("1.2", 2, "0.625"),
            instance("1.2", 2, "0.625"),
        ]
    )
    assert found == (
        SeriesSummary("SERIES 1.2", "CT", 3, "0.625"),
        SeriesSummary("SERIES 1.3", "CT", 2, "5"),
        SeriesSummary("SERIES 1.9", "CT", 1, ""),
    )


def test_slice_thickness_is_what_most_images_say() -> None:
    images = [instance("1.2", 1, "1"), instance("1.2", 1, "3"), instance("1.2", 1, "3")]
    assert series_summaries(images)[0].slice_thickness == "3"
    tie = [instance("1.2", 1, "2.5"), instance("1.2", 1, "1.25"), instance("1.2", 1, "")]
    assert series_summaries(tie)[0].slice_thickness == "1.25"


def test_values_the_manifest_refuses_are_cleaned_not_fatal() -> None:
    (found,) = series_summaries(
        [instance("1.2", 1, "1" * 20, series_description="CHEST\x1bW" + "X" * 100)]
    )
    assert found.slice_thickness == ""
    assert found.description.startswith("CHEST W")
    assert len(found.description) == 64


def test_at_most_the_manifest_limit_is_listed() -> None:
    many = [instance(f"1.{n}", n) for n in range(MAX_SERIES + 5)]
    assert len(series_summaries(many)) == MAX_SERIES
