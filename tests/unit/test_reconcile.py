"""Import reconciliation rules (IHE RAD IRWF.b, PS3.3 C.12.1.1.9) on in-memory datasets."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from receiving_site import errors
from receiving_site.holds import Hold, Kind, Person
from receiving_site.reconcile import Coercion, Demographics, coerce, local_identity

WHEN = datetime(2026, 11, 29, 23, 5, tzinfo=UTC)
OUTSIDE = Demographics("ER-12345", "ER-GENERAL", "DOE^JANE", "19850214")


def instance(**extra: object) -> Dataset:
    ds = Dataset()
    ds.PatientID = OUTSIDE.patient_id
    ds.IssuerOfPatientID = OUTSIDE.issuer_of_patient_id
    ds.PatientName = OUTSIDE.patient_name
    ds.PatientBirthDate = OUTSIDE.birth_date
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def coercion(local: Demographics) -> Coercion:
    return Coercion(local, WHEN, "trauma-relay at Regional Trauma", "St. Elsewhere ER")


LOCAL = Demographics("MRN-777", "REGIONAL", "DOE^JANE", "19850214")


def test_coerced_ids_and_their_history() -> None:
    ds = instance()
    coerce(ds, coercion(LOCAL))

    assert (ds.PatientID, ds.IssuerOfPatientID) == ("MRN-777", "REGIONAL")
    assert ds.PatientName == "DOE^JANE"
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
        "1.2.3.4",
        "1.2.3.4.5",
        "1.2.3.4.5.6",
    )
    (item,) = ds.OriginalAttributesSequence
    (previous,) = item.ModifiedAttributesSequence
    # Only what changed, added or removed, with the values it had (empty: absent before).
    assert sorted(e.keyword for e in previous) == [
        "InstanceCoercionDateTime",
        "InstanceOriginStatus",
        "IssuerOfPatientID",
        "OtherPatientIDsSequence",
        "PatientID",
    ]
    assert previous.InstanceOriginStatus == ""
    assert list(previous.OtherPatientIDsSequence) == []
    assert (previous.PatientID, previous.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")
    assert item.ReasonForTheAttributeModification == "COERCE"
    assert item.ModifyingSystem == "trauma-relay at Regional Trauma"
    assert item.SourceOfPreviousValues == "St. Elsewhere ER"
    assert item.AttributeModificationDateTime == "20261129230500.000000+0000"
    (other,) = ds.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID) == (
        "ER-12345",
        "ER-GENERAL",
        "TEXT",
    )
    assert ds.InstanceOriginStatus == "IMPORTED"
    assert ds.InstanceCoercionDateTime == "20261129230500.000000+0000"


def test_earlier_history_and_other_ids_are_kept() -> None:
    earlier = Dataset()
    earlier.ReasonForTheAttributeModification = "CORRECT"
    earlier.ModifiedAttributesSequence = [Dataset()]
    known = Dataset()
    known.PatientID = "OLD-1"
    known.IssuerOfPatientID = "ELSEWHERE"
    ds = instance(OriginalAttributesSequence=[earlier], OtherPatientIDsSequence=[known])

    coerce(ds, coercion(LOCAL))

    assert [i.ReasonForTheAttributeModification for i in ds.OriginalAttributesSequence] == [
        "CORRECT",
        "COERCE",
    ]
    assert [o.PatientID for o in ds.OtherPatientIDsSequence] == ["OLD-1", "ER-12345"]


def test_name_and_birth_date_coerced_and_outside_qualifiers_dropped() -> None:
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = "2.16.840.1.113883.3.1"
    ds = instance(IssuerOfPatientIDQualifiersSequence=[qualifiers])
    del ds.PatientBirthDate  # the ER did not know it
    local = Demographics("MRN-777", "REGIONAL", "TRAUMA^ZEBRA", "19850215")

    coerce(ds, coercion(local))

    assert (ds.PatientName, ds.PatientBirthDate) == ("TRAUMA^ZEBRA", "19850215")
    assert "IssuerOfPatientIDQualifiersSequence" not in ds
    (previous,) = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
    assert previous.PatientName == "DOE^JANE"
    assert previous.PatientBirthDate == ""  # absent before: recorded empty
    (kept,) = previous.IssuerOfPatientIDQualifiersSequence
    assert kept.UniversalEntityID == "2.16.840.1.113883.3.1"


def test_an_id_change_records_the_issuer_even_when_it_stays() -> None:
    ds = instance()
    coerce(ds, coercion(Demographics("MRN-777", "ER-GENERAL", "DOE^JANE", "19850214")))
    (previous,) = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
    assert (previous.PatientID, previous.IssuerOfPatientID) == ("ER-12345", "ER-GENERAL")


def test_earlier_other_ids_and_origin_are_recorded_before_they_change() -> None:
    known = Dataset()
    known.PatientID = "OLD-9"
    ds = instance(OtherPatientIDsSequence=[known], InstanceOriginStatus="LOCAL")
    coerce(ds, coercion(LOCAL))
    (previous,) = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
    assert [o.PatientID for o in previous.OtherPatientIDsSequence] == ["OLD-9"]
    assert previous.InstanceOriginStatus == "LOCAL"
    assert [o.PatientID for o in ds.OtherPatientIDsSequence] == ["OLD-9", "ER-12345"]


def test_nothing_but_the_import_marks_to_change_records_just_those() -> None:
    ds = instance()
    coerce(ds, coercion(OUTSIDE))
    (previous,) = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence
    assert sorted(e.keyword for e in previous) == [
        "InstanceCoercionDateTime",
        "InstanceOriginStatus",
    ]
    assert "OtherPatientIDsSequence" not in ds
    assert ds.InstanceOriginStatus == "IMPORTED"


def test_coerced_instance_survives_a_write_and_read() -> None:
    ds = instance()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    coerce(ds, coercion(LOCAL))
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    back = pydicom.dcmread(BytesIO(out.getvalue()))
    assert back.PatientID == "MRN-777"
    assert back.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == (
        "ER-12345"
    )


def test_a_local_name_the_character_set_cannot_hold_switches_it_to_utf8() -> None:
    ds = instance(SpecificCharacterSet="ISO_IR 100", StudyDescription="Thorax ärztlich")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    written = BytesIO()
    ds.save_as(written, enforce_file_format=True)
    ds = pydicom.dcmread(BytesIO(written.getvalue()))  # texts still encoded, as from a file
    local = Demographics("MRN-777", "REGIONAL", "ΜΥΛΛΕΡ^Ζωή", "19850214")

    coerce(ds, coercion(local))
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)

    back = pydicom.dcmread(BytesIO(out.getvalue()))
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert (back.PatientName, back.StudyDescription) == ("ΜΥΛΛΕΡ^Ζωή", "Thorax ärztlich")
    (previous,) = back.OriginalAttributesSequence[0].ModifiedAttributesSequence
    assert previous.SpecificCharacterSet == "ISO_IR 100"


def test_a_local_name_the_character_set_holds_keeps_it() -> None:
    latin1 = instance(SpecificCharacterSet="ISO_IR 100")
    coerce(latin1, coercion(Demographics("MRN-777", "REGIONAL", "MÜLLER^JANE", "19850214")))
    assert latin1.SpecificCharacterSet == "ISO_IR 100"
    assert latin1.PatientName == "MÜLLER^JANE"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        coerce(instance(), Coercion(LOCAL, datetime(2026, 1, 1), "x", "y"))


def test_a_patient_new_to_the_pacs_must_be_stated_and_keeps_the_senders_demographics() -> None:
    with pytest.raises(errors.IdentityHeld, match="no images for patient MRN-777") as held:
        local_identity("MRN-777", "REGIONAL", OUTSIDE, None)
    assert held.value.hold == Hold(
        Kind.NEW_LOCAL,
        "The PACS has no images for patient MRN-777 yet, so the record number cannot be checked "
        "against a name",
    )
    local = local_identity("MRN-777", "REGIONAL", OUTSIDE, None, new_patient=True)
    assert local == Demographics("MRN-777", "REGIONAL", "DOE^JANE", "19850214")


def test_same_person_in_the_pacs_takes_the_pacs_spelling() -> None:
    record = Demographics("MRN-777", "REGIONAL", "Doe^Jane^", "19850214")
    assert local_identity("MRN-777", "REGIONAL", OUTSIDE, record).patient_name == "Doe^Jane^"


@pytest.mark.parametrize(
    ("name", "birth", "why"),
    [("SMITH^JOHN", "19850214", "another name"), ("DOE^JANE", "19600101", "another birth date")],
)
def test_another_person_under_that_record_number_is_held(name: str, birth: str, why: str) -> None:
    record = Demographics("MRN-777", "REGIONAL", name, birth)
    with pytest.raises(errors.IdentityHeld, match=why) as held:
        local_identity("MRN-777", "REGIONAL", OUTSIDE, record)
    hold = held.value.hold
    assert hold is not None
    assert (hold.kind, hold.pacs) == (Kind.LOCAL_RECORD, Person("MRN-777", name, birth, ""))
    assert not hold.skippable  # --skip-identity-check does not choose the record number
    with pytest.raises(errors.IdentityHeld, match=why):  # stating a new patient changes nothing
        local_identity("MRN-777", "REGIONAL", OUTSIDE, record, new_patient=True)
    # After review, the PACS's values win.
    assert local_identity("MRN-777", "REGIONAL", OUTSIDE, record, confirmed=True) == record


def test_unknown_birth_date_on_either_side_is_no_conflict() -> None:
    record = Demographics("MRN-777", "REGIONAL", "DOE^JANE", "")
    assert local_identity("MRN-777", "REGIONAL", OUTSIDE, record).birth_date == "19850214"


def test_empty_local_id_is_refused() -> None:
    with pytest.raises(errors.IdentityHeld, match="empty"):
        local_identity("  ", "REGIONAL", OUTSIDE, None, new_patient=True)


def test_uids_are_never_touched_even_when_generated() -> None:
    uid = generate_uid()
    ds = instance(SOPInstanceUID=uid)
    coerce(ds, coercion(LOCAL))
    assert ds.SOPInstanceUID == uid


@pytest.mark.parametrize(
    "typed", ["MRN*", "MRN-77?", "A\\B", "X" * 65, "MRN\t1", "MRN-777 ", " MRN-777"]
)
def test_a_local_id_that_would_match_or_be_something_else_is_refused(typed: str) -> None:
    with pytest.raises(errors.IdentityHeld, match="not one a PACS can hold"):
        local_identity(typed, "REGIONAL", OUTSIDE, None, new_patient=True)


def test_an_issuer_too_long_is_refused() -> None:
    with pytest.raises(errors.IdentityHeld, match="local issuer"):
        local_identity("MRN-777", "I" * 65, OUTSIDE, None, new_patient=True)
