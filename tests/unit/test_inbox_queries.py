"""What the inbox asks the hospital PACS, and how it reads the answers (`queries`)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from sending_site.inbox.errors import QueryInvalid
from sending_site.inbox.queries import (
    StudyQuery,
    move_identifier,
    pacs_series,
    series_identifier,
    study_match,
)


def test_a_search_by_medical_record_number_matches_it_exactly() -> None:
    ds = StudyQuery.by_patient_id(" ER-12345 ").identifier()
    assert ds.QueryRetrieveLevel == "STUDY"
    assert (ds.PatientID, ds.AccessionNumber, ds.PatientName) == ("ER-12345", "", "")
    for key in ("StudyInstanceUID", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
        assert ds[key].value in ("", None)  # asked for


def test_a_search_by_accession_number() -> None:
    ds = StudyQuery.by_accession("A000123").identifier()
    assert (ds.PatientID, ds.AccessionNumber) == ("", "A000123")


@pytest.mark.parametrize(
    ("name", "birth", "pn", "da"),
    [
        ("Doe, Jane", "1985-02-14", "Doe^Jane*", "19850214"),
        ("DOE^JANE", "19850214", "DOE^JANE*", "19850214"),
        ("Müller, Jürgen", "1970-01-01", "Müller^Jürgen*", "19700101"),
    ],
)
def test_a_search_by_name_and_birth_date(name: str, birth: str, pn: str, da: str) -> None:
    ds = StudyQuery.by_name_and_birth_date(name, birth).identifier()
    assert (str(ds.PatientName), ds.PatientBirthDate) == (pn, da)
    assert ("SpecificCharacterSet" in ds) == (not pn.isascii())


@pytest.mark.parametrize(
    "build",
    [
        lambda: StudyQuery.by_patient_id(""),
        lambda: StudyQuery.by_patient_id("ER*"),
        lambda: StudyQuery.by_accession("A?1"),
        lambda: StudyQuery.by_name_and_birth_date("DOE\\JANE", "1985-02-14"),
        lambda: StudyQuery.by_name_and_birth_date("Doe, Jane", "14/02/1985"),
        lambda: StudyQuery().identifier(),
    ],
)
def test_a_search_that_would_match_too_much_or_nothing_is_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(QueryInvalid):
        build()


def test_answers_are_read_tolerantly() -> None:
    ds = Dataset()
    ds.StudyInstanceUID = "1.2.3"
    ds.PatientName = "DOE^JANE"
    ds.ModalitiesInStudy = ["CT", "SR"]
    ds.NumberOfStudyRelatedInstances = "320"
    ds.NumberOfStudyRelatedSeries = ""
    match = study_match(ds)
    assert (match.study_instance_uid, match.patient_name) == ("1.2.3", "DOE^JANE")
    assert (match.modalities, match.instances, match.series) == ("CT\\SR", 320, None)
    assert match.accession_number == ""


def test_series_are_asked_for_with_their_counts_and_read_back() -> None:
    ds = series_identifier("1.2.3")
    assert (ds.QueryRetrieveLevel, ds.StudyInstanceUID) == ("SERIES", "1.2.3")
    assert "NumberOfSeriesRelatedInstances" in ds
    answer = Dataset()
    answer.SeriesInstanceUID = "1.2.3.1"
    answer.SeriesNumber = "2"
    answer.Modality = "CT"
    answer.NumberOfSeriesRelatedInstances = "60"
    series = pacs_series(answer)
    assert (series.series_instance_uid, series.series_number, series.instances) == (
        "1.2.3.1",
        2,
        60,
    )


def test_a_move_names_one_study() -> None:
    ds = move_identifier("1.2.3")
    assert (ds.QueryRetrieveLevel, ds.StudyInstanceUID) == ("STUDY", "1.2.3")
    assert len(ds) == 2
