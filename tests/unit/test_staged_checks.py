"""The identity check of staged images run while the others download (`check_early`) tells
the same outcome as the check run once all are staged: the first failure in image order, and
the headers the folder copy lays the images out by."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from staged_files import staged

from receiving_site import errors, staging
from receiving_site.staging import StagedObject
from sending_site.synthetic import make_ct_study
from transfer_codes.manifest import StudySummary


def _summary(ds: pydicom.Dataset) -> StudySummary:
    return StudySummary(
        patient_name=str(ds.PatientName),
        patient_id=str(ds.PatientID),
        issuer_of_patient_id=str(ds.get("IssuerOfPatientID", "")),
        patient_birth_date=str(ds.PatientBirthDate),
        patient_sex=str(ds.PatientSex),
        study_instance_uid=str(ds.StudyInstanceUID),
        study_date=str(ds.StudyDate),
        study_description="CT",
        accession_number="",
        modalities=("CT",),
        series_count=1,
        instance_count=3,
        sending_site="St. Mary's",
        break_glass=False,
    )


@pytest.fixture
def study(tmp_path: Path) -> tuple[list[StagedObject], StudySummary]:
    paths = make_ct_study(tmp_path / "made", 3, rows=8, columns=8)
    items = staged(sorted(paths))
    return items, _summary(pydicom.dcmread(items[0].path, stop_before_pixels=True))


def test_early_checks_keep_the_headers_the_folder_copy_needs(
    study: tuple[list[StagedObject], StudySummary],
) -> None:
    items, summary = study
    early = {i.entry.index: staging.check_early(i, summary, keep_header=True) for i in items[:2]}
    headers = staging.check_identity(items, summary, early, keep_headers=True)
    assert sorted(headers) == [0, 1, 2]
    for item in items:
        assert headers[item.entry.index].SOPInstanceUID == item.entry.sop_instance_uid
    assert staging.check_identity(items, summary, early) == {}


def test_the_first_failure_in_image_order_is_told_whenever_it_was_found(
    study: tuple[list[StagedObject], StudySummary],
) -> None:
    items, summary = study
    other = pydicom.dcmread(items[1].path)
    other.PatientID = "SOMEONE-ELSE"
    other.save_as(items[1].path)
    items[2].path.write_bytes(b"not DICOM")
    with pytest.raises(errors.IdentityMismatch):
        staging.check_identity(items, summary)
    # Found early and out of order (image 3 first): still image 2's failure.
    early = {i: staging.check_early(items[i], summary, keep_header=False) for i in (2, 1)}
    assert isinstance(early[2].failure, errors.VerificationFailed)
    with pytest.raises(errors.IdentityMismatch):
        staging.check_identity(items, summary, early, keep_headers=True)


def test_an_image_in_another_format_than_the_manifest_lists_fails_verification(
    study: tuple[list[StagedObject], StudySummary],
) -> None:
    """The PACS is offered, and decompression chosen, by the manifest's transfer syntax: a
    file in another one is refused before anything is stored."""
    items, summary = study
    assert items[1].entry.transfer_syntax_uid == ExplicitVRLittleEndian
    staging.check_object(items[1], summary)
    other = dataclasses.replace(items[1].entry, transfer_syntax_uid=ImplicitVRLittleEndian)

    with pytest.raises(errors.VerificationFailed) as failed:
        staging.check_object(StagedObject(other, items[1].path), summary)

    assert "Image 2 is not in the format (transfer syntax) the manifest lists" in str(
        failed.value.message
    )
