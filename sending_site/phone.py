"""What the sending site leaves on the relay for the patient's phone: the summary of what is
shared and the code to carry, both sealed under the phone key from the journal (the key rides
only in the authorization link's fragment, so the relay can read neither)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from sending_site import regions
from sending_site.collect import Collection, Instance
from sending_site.journal import TransferJournal
from site_agent.client import RelayClient
from transfer_codes.codes import RedemptionCode
from transfer_codes.phone import (
    PhoneSummary,
    decode_key,
    iso_date,
    seal_code,
    seal_summary,
    split_link,
)


def token_from_link(link: str) -> str:
    """The authorization token in a patient link (what the relay is shown)."""
    return split_link(link)[0]


MAX_INITIALS = 6


def initials(patient_name: str) -> str:
    """ "DOE^JANE" -> "J. D.": the first letter of each word of the given, middle and family
    names of a DICOM person name (its first, alphabetic, component group), in that order; a
    name without components keeps its words' order. "" when there is no letter."""
    group = patient_name.split("=", 1)[0]
    parts = group.split("^")
    ordered = [*parts[1:3], parts[0]] if len(parts) > 1 else parts
    words = [w for part in ordered for w in re.split(r"[\s\-]+", part) if w]
    letters = [next((ch for ch in w if ch.isalpha()), "") for w in words]
    return " ".join(f"{ch.upper()}." for ch in letters if ch)[: MAX_INITIALS * 3 - 1]


def birth_year(dicom_date: str) -> str:
    """``19850214`` -> ``1985``; "" unless the date starts with a plausible year."""
    year = dicom_date.strip()[:4]
    return year if year.isdigit() and 1850 <= int(year) <= 2200 else ""


def body_regions(instances: list[Instance]) -> tuple[str, ...]:
    """The regions the study shows, head to toe (`sending_site.regions`), series by series."""
    by_series = itertools.groupby(
        sorted(instances, key=lambda i: i.series_instance_uid), key=lambda i: i.series_instance_uid
    )
    found: list[str] = []
    for _, members in by_series:
        series = list(members)
        found += regions.of_series(
            [i.body_part_examined for i in series],
            next((i.series_description for i in series if i.series_description), ""),
            series[0].study_description,
        )
    return regions.ordered(found)


def summary(
    c: Collection, status: dict[str, Any], expires_at: float, break_glass: bool
) -> PhoneSummary:
    """The phone's summary of `c`, from the relay's status (display names) and the journal."""
    first = c.instances[0]
    return PhoneSummary(
        sender=str(status["sender"]["display_name"] or status["sender"]["name"]),
        recipient=str(status["recipient"]["display_name"] or status["recipient"]["name"]),
        study_descriptions=tuple(
            sorted({i.study_description for i in c.instances if i.study_description})
        ),
        modalities=tuple(sorted({i.modality for i in c.instances if i.modality})),
        study_date=iso_date(c.instances[0].study_date),
        series_count=len({i.series_instance_uid for i in c.instances}),
        image_count=len(c.instances),
        expires_at=expires_at,
        break_glass=break_glass,
        patient_initials=initials(first.patient_name),
        patient_birth_year=birth_year(first.patient_birth_date),
        body_regions=body_regions(c.instances),
    )


async def upload(
    client: RelayClient, record: TransferJournal, phone_summary: PhoneSummary | None
) -> None:
    """Seal the current code (and the summary, when given) and leave them for the phone.
    Safe to repeat: the relay keeps the latest of each."""
    key = decode_key(record.phone_key)
    code = RedemptionCode.parse(record.code)
    sealed_summary = None if phone_summary is None else seal_summary(key, phone_summary)
    await client.put_phone_documents(
        record.transfer_id, seal_code(key, code.grouped(), record.capability), sealed_summary
    )
