"""The identity page's check, before the import: the local medical record number staff typed (or
picked from the worklist), what the PACS holds for it (`identity.find_patient`, the same query
the import runs), and each difference from the patient the ER sent, which staff must tick one by
one. Pure except `check`, which asks the PACS."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from receiving_site import holds, identity, reconcile
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
class Candidate:
    """A local patient staff may pick instead of typing the number (the worklist's seam: a
    worklist page sets `appkeys.CANDIDATES` to a function listing them for a study)."""

    patient_id: str
    name: str  # as the worklist gives it (DICOM PN)
    birth_date: str  # DICOM DA
    sex: str
    detail: str = ""  # e.g. "scheduled CT, accession A123"


@dataclass(frozen=True)
class LocalCheck:
    """The local record number, what the PACS has for it (None: nothing yet), and how it differs
    from the transferred patient."""

    local_patient_id: str
    issuer: str
    record: reconcile.Demographics | None
    differences: tuple[Difference, ...]

    @property
    def required(self) -> tuple[str, ...]:
        """The acknowledgements the import needs, by key."""
        if self.record is None:
            return (NEW_RECORD,)
        return tuple(d.key for d in self.differences)

    def filing(self, acknowledged: set[str]) -> Filing | None:
        """The answer to redeem's question once every difference is acknowledged, else None."""
        if not set(self.required) <= acknowledged:
            return None
        return Filing(
            self.local_patient_id,
            confirm_local_record=self.record is not None and bool(self.differences),
            new_local_patient=self.record is None,
        )


def differences(summary: StudySummary, record: reconcile.Demographics) -> tuple[Difference, ...]:
    """Name, birth date and sex where the PACS's record and the ER's patient differ (a value
    one side does not give is no difference)."""
    found = []
    if not holds.same_name(summary.patient_name, record.patient_name):
        found.append(
            Difference(
                "name", "Name", person_name(summary.patient_name), person_name(record.patient_name)
            )
        )
    pairs = (
        ("birth-date", "Birth date", summary.patient_birth_date, record.birth_date, date),
        ("sex", "Sex", summary.patient_sex, record.sex, sex_word),
    )
    for key, label, sent, local, shown in pairs:
        if sent.strip() and local.strip() and sent.strip().upper() != local.strip().upper():
            found.append(Difference(key, label, shown(sent), shown(local)))
    return tuple(found)


async def check(
    pacs: PacsAddress, summary: StudySummary, local_patient_id: str, issuer: str
) -> LocalCheck:
    """Ask the PACS what it holds for `local_patient_id`. Raises `IdentityHeld` with the
    sentence to show when the number cannot be used or the PACS cannot answer clearly."""
    reconcile.check_local_id(local_patient_id, issuer)
    record = await asyncio.to_thread(identity.find_patient, pacs, local_patient_id, issuer)
    found = () if record is None else differences(summary, record)
    return LocalCheck(local_patient_id, issuer, record, found)
