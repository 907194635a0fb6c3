"""The identity page's check, before the import: the local medical record number staff typed (or
picked from the worklist), what the PACS holds for it (`identity.find_patient`, the same query
the import runs), and each difference from the patient the ER sent, which staff must tick one by
one. Pure except `check`, which asks the PACS. What the audit log keeps of a check (`audited`,
`refused`) names no patient: the record number, whether the PACS knew it, and which values
differ."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from receiving_site import errors, holds, identity, reconcile
from receiving_site.pacs import PacsAddress
from receiving_site.preview import date, person_name, sex_word
from receiving_site.redeem import Filing
from transfer_codes.manifest import StudySummary

NEW_RECORD = "new"  # the acknowledgement that a number unknown to the PACS is this patient's


@dataclass(frozen=True)
class Difference:
    key: str  # the form field's suffix: name, birth-date, sex
    label: str
    sent: str  # as the ER sent it, for reading
    local: str  # as the PACS holds it


@dataclass(frozen=True)
class LocalCheck:
    """The local record number, what the PACS has for it (None: nothing yet), and how it differs
    from the transferred patient."""

    local_patient_id: str
    issuer: str
    record: reconcile.Demographics | None
    differences: tuple[Difference, ...]
    worklist: reconcile.Demographics | None = None  # when picked from the worklist

    @property
    def required(self) -> tuple[str, ...]:
        """The acknowledgements the import needs, by key."""
        keys = tuple(d.key for d in self.differences)
        return keys if self.record is not None else (NEW_RECORD, *keys)

    def filing(self, acknowledged: set[str]) -> Filing | None:
        """The answer to redeem's question once every difference is acknowledged, else None."""
        if not set(self.required) <= acknowledged:
            return None
        return Filing(
            self.local_patient_id,
            confirm_local_record=self.record is not None and bool(self.differences),
            new_local_patient=self.record is None,
            local_issuer=self.issuer,
        )


def differences(summary: StudySummary, record: reconcile.Demographics) -> tuple[Difference, ...]:
    """Name, birth date and sex where the PACS's record and the ER's patient differ (a value
    one side does not give is no difference)."""
    sent = reconcile.Demographics(
        summary.patient_id,
        summary.issuer_of_patient_id,
        summary.patient_name,
        summary.patient_birth_date,
        summary.patient_sex,
    )
    return _differences(sent, record)


def _differences(
    sent: reconcile.Demographics, local: reconcile.Demographics, *, prefix: str = "", of: str = ""
) -> tuple[Difference, ...]:
    found = []
    if not holds.same_name(sent.patient_name, local.patient_name):
        found.append(
            Difference(
                f"{prefix}name",
                f"Name{of}",
                person_name(sent.patient_name),
                person_name(local.patient_name),
            )
        )
    pairs = (
        ("birth-date", "Birth date", sent.birth_date, local.birth_date, date),
        ("sex", "Sex", sent.sex, local.sex, sex_word),
    )
    for key, label, ours, theirs, shown in pairs:
        if ours.strip() and theirs.strip() and ours.strip().upper() != theirs.strip().upper():
            found.append(Difference(f"{prefix}{key}", f"{label}{of}", shown(ours), shown(theirs)))
    return tuple(found)


def worklist_differences(
    summary: StudySummary, picked: reconcile.Demographics, record: reconcile.Demographics | None
) -> tuple[Difference, ...]:
    """For a record picked from the worklist: how the ER's patient differs from it when the PACS
    has nothing yet (keys as `differences`), and how the PACS's record differs from it when the
    PACS has one (keys `worklist-name`, `worklist-birth-date`, `worklist-sex`)."""
    if record is None:
        return differences(summary, picked)
    return _differences(picked, record, prefix="worklist-", of=" on the worklist")


async def check(
    pacs: PacsAddress,
    summary: StudySummary,
    local_patient_id: str,
    issuer: str,
    picked: reconcile.Demographics | None = None,
) -> LocalCheck:
    """Ask the PACS what it holds for `local_patient_id` (of `picked`, the worklist's record,
    when staff picked it there). Raises `IdentityHeld` with the sentence to show when the
    number cannot be used or the PACS cannot answer clearly."""
    reconcile.check_local_id(local_patient_id, issuer)
    record = await asyncio.to_thread(identity.find_patient, pacs, local_patient_id, issuer)
    if record is None and picked is None:
        await _not_in_other_letters(pacs, local_patient_id, issuer)
    found = () if record is None else differences(summary, record)
    if picked is not None:
        found += worklist_differences(summary, picked, record)
    return LocalCheck(local_patient_id, issuer, record, found, picked)


def audited(found: LocalCheck) -> dict[str, object]:
    """What the audit log keeps of what a check found (beside the record number): whether the
    PACS has a record for the number (`pacs_record`: found, or none), and which values differ
    from the ER's patient, by their keys as `import-confirmed` acknowledges them."""
    return {
        "pacs_record": "none" if found.record is None else "found",
        "differences": [d.key for d in found.differences],
    }


def refused(e: errors.IdentityHeld) -> tuple[str, str]:
    """The audit record's outcome and `why` for a check that raised `e`: not its sentence,
    which may name a patient. The PACS could not be asked (a failure: asking again may work),
    the number is none a PACS can hold (the PACS was not asked), the PACS has it in other
    letters, or the PACS answered unclearly (other records, or several patients)."""
    if isinstance(e, errors.IdentityNotChecked):
        return "failure", "pacs-not-asked"
    if isinstance(e, errors.LocalIdUnusable):
        return "refused", "not-a-record-number"
    if isinstance(e, errors.LocalIdInOtherCase):
        return "refused", "in-other-letters"
    return "refused", "pacs-unclear"


async def _not_in_other_letters(pacs: PacsAddress, local_patient_id: str, issuer: str) -> None:
    """Raise `IdentityHeld` if the PACS, which has nothing for the typed `local_patient_id`,
    has it in capitals or in small letters: a PACS matches an ID's letters exactly, so 'mrn-555'
    typed without caps would be offered as just given to this patient, a second record beside
    their own 'MRN-555'."""
    for other in sorted({local_patient_id.upper(), local_patient_id.lower()} - {local_patient_id}):
        record = await asyncio.to_thread(identity.find_patient, pacs, other, issuer)
        if record is not None:
            raise errors.LocalIdInOtherCase(
                f"The PACS has no images for {local_patient_id}, but has {other} (the same "
                f"letters, other case) for {person_name(record.patient_name)}: check the "
                "number's letters and type it as this hospital writes it. Nothing was stored."
            )
