"""Where `--out` puts each image (`receiving_site.layout`): recognisable PATIENT/STUDY/SERIES
folders whose names are DICOM File ID components made from received values, never a path."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiving_site.layout import Header, component, image_name, plan

COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")


def header(index: int, **values: str) -> Header:
    fields = {
        "patient_id": "ER-12345",
        "patient_name": "DOE^JANE",
        "study_instance_uid": "1.2.3",
        "study_date": "20250101",
        "series_instance_uid": "1.2.3.1",
        "series_number": "3",
        "modality": "CT",
        **values,
    }
    return Header(index=index, **fields)


def test_a_study_is_filed_by_patient_study_date_and_series() -> None:
    paths = plan(
        [header(0), header(1), header(2, series_instance_uid="1.2.3.2", series_number="4")]
    )
    assert paths == {
        0: PurePosixPath("DOE_JANE/20250101/S003_CT/IM000000"),
        1: PurePosixPath("DOE_JANE/20250101/S003_CT/IM000001"),
        2: PurePosixPath("DOE_JANE/20250101/S004_CT/IM000002"),
    }


@pytest.mark.parametrize(
    ("received", "name"),
    [
        ("../../x", "X"),
        ("..", ""),
        ("/etc/passwd", "ETC_PASS"),
        ("Müller^Zoë", "MULLER_Z"),
        ("DOE^JANE^^DR", "DOE_JANE"),
        ("C:\\Windows", "C_WINDOW"),
        ("\x1b[31mRED", "31MRED"),
        ("山田^太郎", ""),
    ],
)
def test_received_values_are_mapped_onto_the_file_id_charset(received: str, name: str) -> None:
    assert component(received) == name


def test_a_hostile_patient_name_stays_inside_the_folder() -> None:
    (path,) = plan([header(0, patient_name="../../x", patient_id="../..")]).values()
    assert path == PurePosixPath("X/20250101/S003_CT/IM000000")


def test_names_left_empty_fall_back_to_their_position() -> None:
    (path,) = plan(
        [header(0, patient_name="..", patient_id="", study_date="", series_number="")]
    ).values()
    assert path == PurePosixPath("PT000001/ST000001/SE000001/IM000000")


def test_a_taken_name_falls_back_instead_of_merging_two_series() -> None:
    paths = plan([header(0), header(1, series_instance_uid="1.2.3.9")])  # both S003_CT
    assert {p.parts[2] for p in paths.values()} == {"S003_CT", "SE000002"}


def test_image_names_fit_a_file_id_for_any_index() -> None:
    assert image_name(999_999) == "IM999999"
    assert image_name(2**32 - 1) == "FFFFFFFF"


@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.text(max_size=20), st.text(max_size=10)),
        min_size=1,
        max_size=6,
    )
)
def test_every_component_is_a_file_id_component(values: list[tuple[str, str, str]]) -> None:
    headers = [
        header(i, patient_name=name, study_date=date, series_number=number, modality=name)
        for i, (name, date, number) in enumerate(values)
    ]
    paths = plan(headers)
    assert len(set(paths.values())) == len(headers)
    for path in paths.values():
        assert len(path.parts) == 4
        assert all(COMPONENT.fullmatch(part) for part in path.parts), path
