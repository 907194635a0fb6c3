"""Whether a received study looks whole (`sending_site.inbox.completeness.assess`)."""

from __future__ import annotations

from dataclasses import replace

from sending_site.inbox.arrival import Patient
from sending_site.inbox.completeness import SeriesState, assess
from sending_site.inbox.queries import PacsSeries
from sending_site.inbox.records import RefusedImages, SeriesRecord, StudyRecord

NOW = 1_800_000_000.0
THIN = SeriesRecord("1.1", 1, "CT", "AXIAL 1MM", 300, 0.625)
THICK = SeriesRecord("1.2", 2, "CT", "AXIAL 5MM", 60, 5.0)
STUDY = StudyRecord(
    study_instance_uid="1",
    patient=Patient("ER-1", "", "DOE^JANE", "19850214", "F"),
    accession_number="A1",
    study_date="20250101",
    study_time="031500",
    description="CT TRAUMA",
    first_arrival=NOW - 600,
    last_arrival=NOW - 300,
    series=(THIN, THICK),
)


def _pacs(series: SeriesRecord, instances: int | None) -> PacsSeries:
    return PacsSeries(series.series_instance_uid, series.series_number, "CT", "", instances)


def test_every_series_whole_stable_and_thin_is_complete() -> None:
    report = assess(STUDY, [_pacs(THIN, 300), _pacs(THICK, 60)], now=NOW, stable_after=120)
    assert [s.state for s in report.series] == [SeriesState.COMPLETE, SeriesState.COMPLETE]
    assert report.counts_match
    assert report.stable
    assert report.complete
    assert report.findings() == []


def test_a_series_short_of_the_pacs_count_is_partial_and_said_so() -> None:
    report = assess(STUDY, [_pacs(THIN, 320), _pacs(THICK, 60)], now=NOW, stable_after=120)
    assert report.series[0].state is SeriesState.PARTIAL
    assert not report.complete
    assert report.findings() == ["Series 1 (AXIAL 1MM): 300 of its 320 images have arrived."]


def test_a_series_only_the_pacs_holds_is_missing() -> None:
    coronal = PacsSeries("1.3", 3, "CT", "CORONAL", 200)
    pacs = [_pacs(THIN, 300), _pacs(THICK, 60), coronal]
    report = assess(STUDY, pacs, now=NOW, stable_after=120)
    missing = report.series[-1]
    assert (missing.state, missing.received, missing.in_pacs) == (SeriesState.MISSING, 0, 200)
    assert report.findings() == ["Series 3 (CORONAL): none of its 200 images have arrived."]


def test_a_series_the_pacs_does_not_list_does_not_make_the_study_incomplete() -> None:
    report = assess(STUDY, [_pacs(THIN, 300)], now=NOW, stable_after=120)
    assert report.series[1].state is SeriesState.NOT_IN_PACS
    assert report.counts_match


def test_a_pacs_that_gives_no_count_leaves_the_series_unknown() -> None:
    report = assess(STUDY, [_pacs(THIN, None), _pacs(THICK, 60)], now=NOW, stable_after=120)
    assert report.series[0].state is SeriesState.UNKNOWN
    assert not report.counts_match
    assert "Series 1 (AXIAL 1MM): the PACS did not say how many images it holds." in (
        report.findings()
    )


def test_without_the_pacs_the_counts_are_not_checked_and_the_reason_is_given() -> None:
    report = assess(STUDY, None, now=NOW, stable_after=120, pacs_problem="It is offline.")
    assert not report.compared_with_pacs
    assert {s.state for s in report.series} == {SeriesState.UNKNOWN}
    assert not report.complete
    assert report.findings() == [
        "The image counts could not be checked against the PACS (It is offline); check with "
        "the technologist that every series was sent."
    ]


def test_a_study_still_arriving_is_not_stable_until_the_age_is_reached() -> None:
    pacs = [_pacs(THIN, 300), _pacs(THICK, 60)]
    young = assess(STUDY, pacs, now=NOW, stable_after=301)
    assert not young.stable
    assert young.findings() == [
        "Images were still arriving 5 minutes ago; "
        "wait until none has arrived for 5 minutes 1 second."
    ]
    assert assess(STUDY, pacs, now=NOW, stable_after=300).stable
    # A clock that went back never makes a negative age.
    assert assess(STUDY, pacs, now=NOW - 1000, stable_after=0).seconds_since_last_image == 0


def test_what_is_warned_about_leaves_out_counts_and_images_still_arriving() -> None:
    """The items a page's warnings are checked against when staff send: they do not change as
    images come, only when something new is wrong."""
    short = assess(STUDY, [_pacs(THIN, 320), _pacs(THICK, 60)], now=NOW, stable_after=400)
    shorter = assess(STUDY, [_pacs(THIN, 330), _pacs(THICK, 60)], now=NOW + 30, stable_after=400)
    assert short.findings() != shorter.findings()  # 300 of 320, then of 330; seconds ago
    assert short.warned_about() == shorter.warned_about() == {f"series {short.series[0].label}"}
    whole = assess(STUDY, [_pacs(THIN, 300), _pacs(THICK, 60)], now=NOW, stable_after=400)
    assert not whole.stable
    assert whole.warned_about() == set()  # still arriving: the upload follows
    unchecked = assess(STUDY, None, now=NOW, stable_after=0)
    assert unchecked.warned_about() == {"counts not checked"}


def test_a_ct_study_without_a_thin_slice_series_is_warned_about() -> None:
    for thinnest in (1.6, 5.0, None):
        thick_only = replace(STUDY, series=(replace(THIN, thinnest_slice_mm=thinnest), THICK))
        report = assess(thick_only, None, now=NOW, stable_after=0)
        assert report.no_thin_slices
        assert any("no thin-slice series (1.5 mm or thinner)" in f for f in report.findings())
    exactly = replace(STUDY, series=(replace(THIN, thinnest_slice_mm=1.5), THICK))
    assert not assess(exactly, None, now=NOW, stable_after=0).no_thin_slices


def test_the_thin_slice_rule_is_for_ct_only() -> None:
    mr = replace(STUDY, series=(replace(THICK, modality="MR"),))
    assert not assess(mr, None, now=NOW, stable_after=0).no_thin_slices


def test_images_refused_for_another_patient_are_said_first_and_make_the_study_incomplete() -> None:
    """How many, that they are not sent, what to do, and from where they came; never whom they
    named. More of them later is not a new warning; the first one is."""
    pacs = [_pacs(THIN, 300), _pacs(THICK, 60)]
    whole = assess(STUDY, pacs, now=NOW, stable_after=120)
    one = RefusedImages(1, ("CT1",), NOW - 200)
    report = assess(replace(STUDY, refused=one), pacs, now=NOW, stable_after=120)
    assert (report.counts_match, report.stable, report.complete) == (True, True, False)
    assert report.refused_images == 1
    assert report.findings() == [
        "1 image that came for this study was refused because it carries another patient's "
        "name, record number or birth date (it came from CT1). It is not sent with this "
        "study. Ask radiology to check the study on the scanner or in the PACS; once put right "
        "and sent to this agent again, it is added here."
    ]
    assert whole.warned_about() < report.warned_about()

    three = RefusedImages(3, ("", "CT1", "PACS"), NOW - 100)
    more = assess(replace(STUDY, refused=three, series=(THICK,)), pacs, now=NOW, stable_after=120)
    assert more.refused_images == 3
    first, *rest = more.findings()
    assert first.startswith(
        "3 images that came for this study were refused because they carry another patient's "
        "name, record number or birth date (they came from CT1, PACS). They are not sent with "
        "this study."
    )
    assert first.endswith("once put right and sent to this agent again, they are added here.")
    assert rest  # the missing thin slices, after
    assert "images of another patient refused" in more.warned_about()
    unknown = assess(
        replace(STUDY, refused=RefusedImages(2, ("",), NOW)), pacs, now=NOW, stable_after=0
    )
    assert "came from" not in unknown.findings()[0]
