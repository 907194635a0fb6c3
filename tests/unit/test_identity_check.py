"""The identity page's rule: the import goes on only once each difference between the ER's
patient and the PACS's record for the local number is acknowledged (or, for a number the PACS
has nothing for, that it was just given to this patient); what it answers redeem."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import Dataset

from receiving_site import errors, identity
from receiving_site.console.identity_check import (
    NEW_RECORD,
    LocalCheck,
    check,
    differences,
    worklist_differences,
)
from receiving_site.pacs import PacsAddress
from receiving_site.reconcile import Demographics
from receiving_site.redeem import Filing, RedeemRequest
from transfer_codes.manifest import StudySummary


def _summary(**values: str) -> StudySummary:
    fields: dict[str, object] = {
        "patient_name": "DOE^JANE",
        "patient_id": "ER-12345",
        "issuer_of_patient_id": "ER-GENERAL",
        "patient_birth_date": "19850214",
        "patient_sex": "F",
        "study_instance_uid": "1.2.3",
        "study_date": "20250101",
        "study_description": "CT",
        "accession_number": "",
        "modalities": ("CT",),
        "series_count": 1,
        "instance_count": 1,
        "sending_site": "St. Mary's",
        "break_glass": False,
    }
    fields.update(values)
    return StudySummary(**fields)  # type: ignore[arg-type]


def _record(name: str = "DOE^JANE", birth: str = "19850214", sex: str = "F") -> Demographics:
    return Demographics("MRN-1", "COUNTY", name, birth, sex)


def test_the_same_patient_needs_no_acknowledgement() -> None:
    # Letter case and trailing carets are no difference; a value one side lacks is none either.
    found = differences(_summary(patient_sex=""), _record(name="Doe^Jane^"))
    assert found == ()
    check = LocalCheck("MRN-1", "COUNTY", _record(), found)
    assert check.required == ()
    assert check.filing(set()) == Filing("MRN-1", local_issuer="COUNTY")


def test_each_difference_must_be_acknowledged() -> None:
    found = differences(_summary(), _record(name="ROE^JANE", birth="19850215", sex="M"))
    assert [(d.key, d.sent, d.local) for d in found] == [
        ("name", "DOE, JANE", "ROE, JANE"),
        ("birth-date", "1985-02-14", "1985-02-15"),
        ("sex", "female", "male"),
    ]
    check = LocalCheck("MRN-1", "COUNTY", _record(), found)
    assert check.filing({"name", "birth-date"}) is None
    assert check.filing({"name", "birth-date", "sex"}) == Filing(
        "MRN-1", confirm_local_record=True, local_issuer="COUNTY"
    )


def test_a_number_the_pacs_does_not_know_must_be_stated_new() -> None:
    check = LocalCheck("MRN-2", "COUNTY", None, ())
    assert check.required == (NEW_RECORD,)
    assert check.filing(set()) is None
    assert check.filing({NEW_RECORD}) == Filing(
        "MRN-2", new_local_patient=True, local_issuer="COUNTY"
    )


def _picked(name: str = "DOE^JANEY", birth: str = "19850214", sex: str = "F") -> Demographics:
    return Demographics("MRN-WL", "REGIONAL", name, birth, sex)


def test_a_worklist_record_the_pacs_does_not_know_is_compared_with_the_er() -> None:
    found = worklist_differences(_summary(), _picked(), None)
    assert [(d.key, d.sent, d.local) for d in found] == [("name", "DOE, JANE", "DOE, JANEY")]
    check = LocalCheck("MRN-WL", "REGIONAL", None, found, _picked())
    assert check.required == (NEW_RECORD, "name")
    assert check.filing({NEW_RECORD}) is None
    assert check.filing({NEW_RECORD, "name"}) == Filing(
        "MRN-WL", new_local_patient=True, local_issuer="REGIONAL"
    )


def test_a_worklist_record_is_compared_with_the_pacs_record_too() -> None:
    record = _record(name="DOE^JANE", sex="M")
    found = differences(_summary(), record) + worklist_differences(_summary(), _picked(), record)
    assert [(d.key, d.label, d.sent, d.local) for d in found] == [
        ("sex", "Sex", "female", "male"),
        ("worklist-name", "Name on the worklist", "DOE, JANEY", "DOE, JANE"),
        ("worklist-sex", "Sex on the worklist", "female", "male"),
    ]
    check = LocalCheck("MRN-WL", "REGIONAL", record, found, _picked())
    assert check.filing({"sex", "worklist-name"}) is None
    assert check.filing({"sex", "worklist-name", "worklist-sex"}) is not None


def test_a_filing_carries_the_picked_issuer_into_the_redemption() -> None:
    request = RedeemRequest("http://relay", "c", Path("state"), local_issuer="COUNTY")
    assert Filing("MRN-1").applied_to(request).local_issuer == "COUNTY"
    assert Filing("MRN-1", local_issuer="REGIONAL").applied_to(request).local_issuer == "REGIONAL"


@pytest.mark.asyncio
async def test_a_number_the_pacs_has_in_other_letters_is_not_offered_as_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Typed without caps ('mrn-555'), a record number the PACS holds as 'MRN-555' would be
    found nowhere (DICOM matches an ID's letters exactly) and offered as just given to this
    patient: a second record beside the patient's own, its images missing from it. It is
    refused, naming the PACS's number, instead."""
    held = Demographics("MRN-555", "COUNTY", "DOE^JANE", "19850214", "F")
    asked: list[str] = []

    def find_patient(pacs: PacsAddress, patient_id: str, issuer: str) -> Demographics | None:
        asked.append(patient_id)
        return held if patient_id == "MRN-555" else None

    monkeypatch.setattr(identity, "find_patient", find_patient)
    pacs = PacsAddress("PACS", "127.0.0.1", 104)
    with pytest.raises(errors.IdentityHeld) as raised:
        await check(pacs, _summary(), "mrn-555", "COUNTY")
    assert "MRN-555" in raised.value.message
    assert "letters" in raised.value.message
    assert asked[0] == "mrn-555"

    asked.clear()
    found = await check(pacs, _summary(), "MRN-777", "COUNTY")  # new in any letters: offered
    assert (found.record, asked) == (None, ["MRN-777", "mrn-777"])
    asked.clear()
    found = await check(pacs, _summary(), "555000", "COUNTY")  # no letters: asked once
    assert (found.record, asked) == (None, ["555000"])


def _answering(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """The PACS answers a patient-ID query with a study for each of `names` (or, with none
    given, cannot be asked at all)."""

    @contextlib.contextmanager
    def querying(pacs: PacsAddress) -> Iterator[None]:
        if not names:
            raise identity._cannot_check(pacs, "refused the association")
        yield None

    def find(assoc: object, pacs: PacsAddress, query: Dataset) -> list[Dataset]:
        found = []
        for name in names:
            ds = Dataset()
            ds.PatientID, ds.PatientName, ds.PatientBirthDate = query.PatientID, name, "19850214"
            found.append(ds)
        return found

    monkeypatch.setattr(identity, "_querying", querying)
    monkeypatch.setattr(identity, "_find", find)


def test_only_a_pacs_that_could_not_be_asked_is_told_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The identity page tells staff to check the record again once the PACS answers only when
    it could not be asked (`IdentityNotChecked`); a PACS that answered unclearly (the number
    under two names) is a hold of its own, which asking again will not clear."""
    pacs = PacsAddress("PACS", "127.0.0.1", 104)
    _answering(monkeypatch)
    with pytest.raises(errors.IdentityNotChecked, match="could not be asked"):
        identity.find_patient(pacs, "MRN-555", "COUNTY")
    _answering(monkeypatch, "DOE^JANE", "ROE^RICHARD")
    with pytest.raises(errors.IdentityHeld, match="more than one name") as raised:
        identity.find_patient(pacs, "MRN-555", "COUNTY")
    assert not isinstance(raised.value, errors.IdentityNotChecked)
