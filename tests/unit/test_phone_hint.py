"""The hint on the phone that identifies the patient without exposing them: initials and birth
year, and the body regions scanned (`sending_site.phone`, `sending_site.regions`), sealed in
the phone summary; and a summary sealed before the hint existed still opens."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest

from sending_site import regions
from sending_site.collect import collect
from sending_site.phone import birth_year, body_regions, initials, summary
from sending_site.synthetic import make_ct_study
from transfer_codes.notes import seal_json
from transfer_codes.phone import (
    AAD_PREFIX,
    PhoneSummary,
    decode_key,
    new_phone_key,
    open_sealed,
    seal_summary,
)

STATUS = {
    "sender": {"name": "st-mary-er", "display_name": "St. Mary's"},
    "recipient": {"name": "county-trauma", "display_name": "County Trauma"},
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DOE^JANE", "J. D."),
        ("Doe^John^Quincy^Dr^Jr", "J. Q. D."),  # prefix and suffix are not initials
        ("García López^María José", "M. J. G. L."),
        ("O'Brien-Smith^Ann", "A. O. S."),
        ("John Doe", "J. D."),  # no components: the words as written
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "T. Y."),  # the alphabetic group only
        ("", ""),
        ("^^^", ""),
        ("A^B^C D E F G H", "B. C. D. E. F. G."),  # at most six
    ],
)
def test_initials_given_names_first(name: str, expected: str) -> None:
    assert initials(name) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [("19850214", "1985"), ("1985", "1985"), ("", ""), ("00000000", ""), ("UNKNOWN", "")],
)
def test_birth_year(date: str, expected: str) -> None:
    assert birth_year(date) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HEAD", ("head",)),
        ("C-SPINE", ("cervical_spine",)),
        ("CHESTABDPELVIS", ("chest", "abdomen", "pelvis")),
        ("Abdomen", ("abdomen",)),
        ("head_neck", ("head", "neck")),
        ("WHOLEBODY", ("whole_body",)),
        ("EXTREMITY", ("Extremity",)),  # not known here: kept as found
        ("", ()),
    ],
)
def test_regions_from_body_part_examined(value: str, expected: tuple[str, ...]) -> None:
    assert regions.from_body_part(value) == expected


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("CT HEAD WO CONTRAST", ("head",)),
        ("CT C-SPINE W/O", ("cervical_spine",)),  # not also "spine"
        ("CT THORACIC SPINE", ("spine",)),  # not also "chest"
        ("CTA CHEST ABD PELVIS", ("chest", "abdomen", "pelvis")),
        ("CT CAP", ("chest", "abdomen", "pelvis")),
        ("ABD/PELVIS", ("abdomen", "pelvis")),
        ("Left knee", ("leg",)),
        ("CT Facial bones", ("face",)),
        ("Trauma pan scan", ("whole_body",)),
        ("Scout", ()),
        ("CAPTURE 2", ()),  # words, not letters inside words
    ],
)
def test_regions_from_descriptions(description: str, expected: tuple[str, ...]) -> None:
    assert regions.from_description(description) == expected


def test_regions_are_ordered_head_to_toe_once_and_bounded() -> None:
    assert regions.ordered(["pelvis", "Extremity", "head", "chest", "head"]) == (
        "head",
        "chest",
        "pelvis",
        "Extremity",
    )
    assert len(regions.ordered([*regions.REGIONS, "Other"])) == regions.MAX_REGIONS


def _series(folder: Path, seed: int, body_part: str | None, description: str) -> None:
    for path in make_ct_study(folder, 2, seed=seed):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(seed)])
        ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["one study"])
        ds.SeriesDescription = description
        if body_part is None:
            del ds.BodyPartExamined
        else:
            ds.BodyPartExamined = body_part
        ds.save_as(path)


def test_the_summary_carries_the_hint_from_the_collected_study(tmp_path: Path) -> None:
    # A pan-scan: one series says its body part, one only its description, one neither.
    _series(tmp_path / "abdomen", 1, "ABDOMEN", "ABD 5MM")
    _series(tmp_path / "head", 2, None, "CT HEAD WO")
    _series(tmp_path / "neck", 3, "", "CT C-SPINE BONE")
    _series(tmp_path / "chest", 4, "CHEST", "")
    c = collect([tmp_path])
    assert body_regions(c.instances) == ("head", "cervical_spine", "chest", "abdomen")
    phone = summary(c, STATUS, 1_800_000_000.0, break_glass=False)
    assert (phone.patient_initials, phone.patient_birth_year) == ("J. D.", "1985")
    assert phone.body_regions == ("head", "cervical_spine", "chest", "abdomen")
    # The patient's name itself is not in the summary.
    assert "DOE" not in repr(phone).upper()
    assert "JANE" not in repr(phone).upper()

    key = decode_key(new_phone_key())
    opened = open_sealed(key, "summary", seal_summary(key, phone))
    assert opened["patient_initials"] == "J. D."
    assert opened["patient_birth_year"] == "1985"
    assert opened["body_regions"] == ["head", "cervical_spine", "chest", "abdomen"]


def test_a_summary_sealed_before_the_hint_still_opens() -> None:
    key = decode_key(new_phone_key())
    old = PhoneSummary("St. Mary's", "County", ("CT",), ("CT",), "2025-01-01", 1, 3, 0.0, False)
    body = dataclasses.asdict(old)
    for field in ("patient_initials", "patient_birth_year", "body_regions"):
        del body[field]
    sealed = seal_json(key, AAD_PREFIX + b"summary", body)  # as an older sending site sealed it
    opened = open_sealed(key, "summary", sealed)
    assert "patient_initials" not in opened
    assert opened["image_count"] == 3
