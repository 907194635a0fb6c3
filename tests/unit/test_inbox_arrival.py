"""The inbox's decisions about one received instance (`sending_site.inbox.arrival`)."""

from __future__ import annotations

from dataclasses import replace
from io import BytesIO

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from inbox_harness import ARRIVAL, JANE
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from sending_site.inbox.arrival import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH_SOP_CLASS,
    IMPLEMENTATION_VERSION,
    PREAMBLE,
    Patient,
    bad_uid,
    conflict,
    part10_header,
    refusal,
    shown,
)

CT = ARRIVAL.sop_class_uid


@pytest.mark.parametrize(
    "value", ["", "../../x", "1.2." + "3" * 196, "1.02.3", "1.2.3.", "1.2.3\x00", "1.2.a"]
)
def test_what_is_not_a_uid_is_refused_as_not_understood(value: str) -> None:
    refused = bad_uid("Study Instance UID", value)
    assert refused is not None
    assert refused.status == CANNOT_UNDERSTAND
    assert refused.reason.startswith("the Study Instance UID ")


def test_a_valid_uid_passes() -> None:
    assert bad_uid("Study Instance UID", "1.2.840.10008.5.1.4.1.1.2") is None


def test_received_values_are_quoted_short_and_without_control_characters() -> None:
    assert shown("../../x") == "'../../x'"
    assert shown("1\n2") == "'1\\n2'"
    long = shown("9" * 200)
    assert long.endswith("... (200 characters)")
    assert len(long) < 110


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sop_instance_uid", "../../x"),
        ("study_instance_uid", "1.2." + "3" * 196),
        ("series_instance_uid", ""),
        ("sop_class_uid", "CT"),
    ],
)
def test_an_instance_with_a_bad_uid_is_refused(field: str, value: str) -> None:
    refused = refusal(replace(ARRIVAL, **{field: value}), CT, ARRIVAL.sop_instance_uid)
    assert refused is not None
    assert refused.status == CANNOT_UNDERSTAND


def test_a_data_set_that_is_not_the_announced_instance_is_refused() -> None:
    other_instance = refusal(ARRIVAL, CT, "1.2.3.5")
    other_class = refusal(ARRIVAL, "1.2.840.10008.5.1.4.1.1.4", ARRIVAL.sop_instance_uid)
    assert other_instance is not None
    assert other_class is not None
    assert other_instance.status == other_class.status == DOES_NOT_MATCH_SOP_CLASS
    assert refusal(ARRIVAL, CT, ARRIVAL.sop_instance_uid) is None


def test_a_new_study_series_and_instance_conflict_with_nothing() -> None:
    assert conflict(ARRIVAL, study_patient=None, series_study=None, earlier_home=None) is None


def test_a_resent_copy_into_the_same_series_is_no_conflict() -> None:
    same = conflict(
        ARRIVAL, study_patient=JANE, series_study="1.2.3", earlier_home=("1.2.3", "1.2.3.1")
    )
    assert same is None


@pytest.mark.parametrize(
    "other",
    [
        replace(JANE, patient_id="ER-2"),
        replace(JANE, issuer="OTHER"),
        replace(JANE, name="DOE^JOHN"),
        replace(JANE, birth_date="19850215"),
    ],
)
def test_a_study_held_under_another_patient_is_never_merged(other: Patient) -> None:
    refused = conflict(ARRIVAL, study_patient=other, series_study=None, earlier_home=None)
    assert refused is not None
    assert "another patient" in refused.reason


def test_a_series_or_image_held_under_another_study_is_refused() -> None:
    series = conflict(ARRIVAL, study_patient=None, series_study="9.9", earlier_home=None)
    image = conflict(ARRIVAL, study_patient=JANE, series_study=None, earlier_home=("9.9", "9.9.1"))
    assert series is not None
    assert image is not None
    assert "another study" in series.reason
    assert "another series" in image.reason


def test_the_part10_header_has_a_zero_preamble_and_meta_from_the_association() -> None:
    header = part10_header(CT, "1.2.3.4", "1.2.840.10008.1.2.1", " CT1  ")
    assert header[:128] == b"\x00" * 128
    assert header[128:132] == b"DICM"
    meta = pydicom.dcmread(BytesIO(header)).file_meta
    assert meta.MediaStorageSOPClassUID == CT
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert meta.SourceApplicationEntityTitle == "CT1"


def whole_file_meta(sop_class: str, sop_instance: str, syntax: str, source: str) -> bytes:
    """What `part10_header` gave before it encoded its elements one by one: the whole file
    meta written by pydicom at once."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    meta.SourceApplicationEntityTitle = source.strip()
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return PREAMBLE + b"DICM" + buffer.getvalue()


_UIDS = st.from_regex(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,6}", fullmatch=True)
_AE_TITLES = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"), max_size=16
)


@given(_UIDS, _UIDS, _UIDS, _AE_TITLES)
def test_the_part10_header_is_the_file_meta_pydicom_writes_whole(
    sop_class: str, sop_instance: str, syntax: str, source: str
) -> None:
    header = part10_header(sop_class, sop_instance, syntax, source)
    assert header == whole_file_meta(sop_class, sop_instance, syntax, source)


@pytest.mark.parametrize(
    ("sop_instance", "syntax", "source"),
    [
        ("1.2.3.4", "1.2.840.10008.1.2.1", " CT1  "),
        ("1.2.3.45", "1.2.840.10008.1.2", ""),  # odd and even UID lengths, no AE title
        ("1." + "2" * 62, "1.2.840.10008.1.2.4.50", "ORTHANCA"),  # a UID of 64 characters
        ("1.2.3.4.5", "1.2.840.10008.1.2.1.99", "SIXTEEN_CHARS_AE"),
    ],
)
def test_images_of_one_association_share_its_header_but_their_own_uid(
    sop_instance: str, syntax: str, source: str
) -> None:
    first = part10_header(CT, "1.2.3", syntax, source)  # the shared elements, encoded once
    assert first == whole_file_meta(CT, "1.2.3", syntax, source)
    assert part10_header(CT, sop_instance, syntax, source) == whole_file_meta(
        CT, sop_instance, syntax, source
    )


def test_a_header_without_its_uids_is_refused_as_pydicom_refuses_it() -> None:
    with pytest.raises(AttributeError):
        whole_file_meta(CT, "", "1.2.840.10008.1.2.1", "CT1")
    with pytest.raises(AttributeError):
        part10_header(CT, "", "1.2.840.10008.1.2.1", "CT1")
