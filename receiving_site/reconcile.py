"""Import reconciliation (IHE RAD IRWF.b; DICOM PS3.3 C.12.1.1.9): file the outside study under
the trauma center's own medical record number. Pure: datasets in, datasets out, no I/O.

Staff give the local patient ID (and its issuer) after checking the preview against the patient
in front of them. `local_identity` decides which demographics the images get: the PACS's own
record for that ID when it has one, and it must be the same person (same name, same birth date)
unless a person confirms the difference; the sender's name and birth date for a patient new to
this PACS, which staff must state (nothing in the PACS to check a mistyped number against).
`coerce` then rewrites one instance:

- Patient ID, Issuer of Patient ID, and where they differ Patient's Name and Birth Date, take
  the local values; Issuer of Patient ID Qualifiers (which describe the outside issuer) go.
- The outside Patient ID and its issuer are added to Other Patient IDs Sequence.
- Instance Origin Status is IMPORTED and Instance Coercion DateTime is set.
- Every attribute so changed, added or removed goes, as it was, into a new Original Attributes
  Sequence item (Modified Attributes Sequence, time, modifying system, source, reason COERCE);
  existing items are kept. A local value the instance's character set cannot hold switches it
  to UTF-8.
- Study, Series and SOP Instance UIDs never change.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from receiving_site import errors
from receiving_site.holds import Hold, Kind, Person, same_name

REASON = "COERCE"  # PS3.3 C.12.1.1.9.2 defined term: values replaced to match local records
IMPORTED = "IMPORTED"  # Instance Origin Status (0400,0600)
_COERCED = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
_DROPPED = ("IssuerOfPatientIDQualifiersSequence",)
_MARKS = ("InstanceOriginStatus", "InstanceCoercionDateTime")
# Every attribute `coerce` reads or writes: what it writes follows from these, as read, and the
# coercion's `fingerprint` alone (`coded_coercion` relies on it).
ATTRIBUTES = (
    "SpecificCharacterSet",
    *_COERCED,
    *_DROPPED,
    *_MARKS,
    "OtherPatientIDsSequence",
    "OriginalAttributesSequence",
)
UTF8 = "ISO_IR 192"
MAX_LO = 64  # characters in a Long String (Patient ID, Issuer of Patient ID), PS3.5 6.2
# Wildcards in a C-FIND key (PS3.4 C.2.2.2.4) and the value separator: a record number with one
# would match, or be, something else.
_NOT_IN_AN_ID = frozenset("*?\\")


@dataclass(frozen=True)
class Demographics:
    """A patient as one system files them."""

    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    birth_date: str
    sex: str = ""  # shown when a hold compares records; never coerced


@dataclass(frozen=True)
class Coercion:
    """What `coerce` writes: the local identity and who changed what, when."""

    local: Demographics
    when: datetime  # timezone-aware
    modifying_system: str  # e.g. "trauma-relay at Regional Trauma Center"
    source: str  # where the previous values came from: the sending hospital


def check_local_id(patient_id: str, issuer: str) -> None:
    """Raise `IdentityHeld` unless `patient_id` (non-empty) and `issuer` are values a PACS can
    hold and match exactly: checked before the code is spent."""
    for label, value in (("patient ID", patient_id), ("issuer", issuer)):
        if label == "patient ID" and not value.strip():
            raise errors.LocalIdUnusable("The local patient ID is empty; nothing was stored.")
        bad = any(c in _NOT_IN_AN_ID or not c.isprintable() for c in value)
        if len(value) > MAX_LO or bad or value != value.strip():
            raise errors.LocalIdUnusable(
                f"The local {label} {value!r} is not one a PACS can hold: at most {MAX_LO} "
                "characters, without *, ? or \\, and no spaces around it. Check it; nothing "
                "was stored."
            )


def _held(kind: Kind, why: str, record: Demographics | None = None) -> errors.IdentityHeld:
    """A hold `--skip-identity-check` does not lift: the record number is staff's own choice."""
    person = None
    if record is not None:
        person = Person(record.patient_id, record.patient_name, record.birth_date, record.sex)
    return errors.IdentityHeld(f"{why}.", Hold(kind, why, person))


def local_identity(
    patient_id: str,
    issuer: str,
    outside: Demographics,
    pacs_record: Demographics | None,
    *,
    confirmed: bool = False,
    new_patient: bool = False,
) -> Demographics:
    """The demographics to file the study under, for local `patient_id` from `issuer`.

    `pacs_record` is what the PACS holds for that ID. Raises `IdentityHeld`:
    - when the PACS's patient differs from the transferred one in name or birth date (a
      mistyped record number would put the images on someone else's record), unless
      `confirmed`: a person checked that they are the same patient (a trauma alias name, a
      corrected birth date), and the images take the PACS's values;
    - when the PACS holds nothing for that ID (nothing to check the number against), unless
      `new_patient`: staff state that it is a record number just given to this patient, and
      the images keep the sender's name and birth date."""
    check_local_id(patient_id, issuer)
    if pacs_record is None:
        if not new_patient:
            raise _held(
                Kind.NEW_LOCAL,
                f"The PACS has no images for patient {patient_id} yet, so the record number "
                "cannot be checked against a name",
            )
        return Demographics(patient_id, issuer, outside.patient_name, outside.birth_date)
    if not confirmed:
        if not same_name(pacs_record.patient_name, outside.patient_name):
            why = f"The PACS's patient {patient_id} has another name than the transferred patient"
            raise _held(Kind.LOCAL_RECORD, why, pacs_record)
        theirs, ours = pacs_record.birth_date.strip(), outside.birth_date.strip()
        if theirs and ours and theirs != ours:
            raise _held(
                Kind.LOCAL_RECORD,
                f"The PACS's patient {patient_id} has another birth date than the transferred "
                "patient",
                pacs_record,
            )
    return Demographics(
        patient_id,
        issuer,
        pacs_record.patient_name,
        pacs_record.birth_date or outside.birth_date,
    )


def fingerprint(coercion: Coercion) -> tuple[str, ...]:
    """Every value of `coercion` that `coerce` writes, as it writes them: two coercions with the
    same fingerprint write the same. Raises `ValueError` as `coerce` does (a naive time)."""
    local = coercion.local
    return (
        local.patient_id,
        local.issuer_of_patient_id,
        local.patient_name,
        local.birth_date,
        _dt(coercion.when),
        coercion.modifying_system[:MAX_LO],
        coercion.source[:MAX_LO],
    )


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "")


def coerce(ds: Dataset, coercion: Coercion) -> None:
    """Rewrite `ds` in place to `coercion.local` (see the module docstring). Every attribute
    changed, added or removed goes into the new Original Attributes item with its previous
    value (empty when it was absent). A local value the instance's character set cannot hold
    switches it to UTF-8 (ISO_IR 192), every other text re-encoded."""
    local = coercion.local
    wanted = {
        "PatientID": local.patient_id,
        "IssuerOfPatientID": local.issuer_of_patient_id,
        "PatientName": local.patient_name,
        "PatientBirthDate": local.birth_date,
    }
    changed = [k for k in _COERCED if _text(ds, k) != wanted[k]]
    if "PatientID" in changed and "IssuerOfPatientID" not in changed:
        changed.append("IssuerOfPatientID")  # an ID means nothing without its issuer
    touched = [*changed, *(k for k in _DROPPED if k in ds), *_MARKS]
    outside = (_text(ds, "PatientID"), _text(ds, "IssuerOfPatientID"))
    others = list(ds.get("OtherPatientIDsSequence", []))
    known = {(_text(o, "PatientID"), _text(o, "IssuerOfPatientID")) for o in others}
    add_other = (
        bool(outside[0])
        and outside != (local.patient_id, local.issuer_of_patient_id)
        and outside not in known
    )
    if add_other:
        touched.append("OtherPatientIDsSequence")
    recharset = not _encodable(ds, wanted.values())
    if recharset:
        ds.decode()  # every text as str, before the character set changes under it
        touched.append("SpecificCharacterSet")

    previous = Dataset()
    for keyword in touched:
        if keyword in ds:
            # ds's element changes below (its value replaced, never changed in place): a
            # sequence's items are copied too, another element shares its value.
            element = ds[keyword]
            previous[keyword] = copy.deepcopy(element) if element.VR == "SQ" else copy.copy(element)
        elif keyword.endswith("Sequence"):
            setattr(previous, keyword, Sequence())
        else:
            setattr(previous, keyword, "")  # absent before: recorded as empty
    item = Dataset()
    item.ModifiedAttributesSequence = Sequence([previous])
    item.AttributeModificationDateTime = _dt(coercion.when)
    item.ModifyingSystem = coercion.modifying_system[:MAX_LO]
    item.SourceOfPreviousValues = coercion.source[:MAX_LO]
    item.ReasonForTheAttributeModification = REASON
    history = list(ds.get("OriginalAttributesSequence", []))
    ds.OriginalAttributesSequence = Sequence([*history, item])

    if add_other:
        other = Dataset()
        other.PatientID, other.IssuerOfPatientID = outside
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = Sequence([*others, other])
    if recharset:
        ds.SpecificCharacterSet = UTF8
    for keyword in changed:
        setattr(ds, keyword, wanted[keyword])
    for keyword in _DROPPED:
        if keyword in ds:
            del ds[keyword]
    ds.InstanceOriginStatus = IMPORTED
    ds.InstanceCoercionDateTime = _dt(coercion.when)


def _dt(when: datetime) -> str:
    """A DICOM DT with its UTC offset, e.g. 20261129230500.000000+0000."""
    if when.tzinfo is None:
        raise ValueError("coercion time must be timezone-aware")
    return when.strftime("%Y%m%d%H%M%S.%f%z")


def _encodable(ds: Dataset, values: Iterable[str]) -> bool:
    """Whether the instance's Specific Character Set can hold every one of `values`."""
    raw = ds.get("SpecificCharacterSet") or []
    names = [n for n in ([raw] if isinstance(raw, str) else [str(x) for x in raw]) if n]
    encodings = ["ascii"] if names in ([], ["ISO_IR 6"]) else convert_encodings(names)
    return all(any(_fits(text, e) for e in encodings) for text in values)


def _fits(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
