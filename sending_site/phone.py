"""What the sending site leaves on the relay for the patient's phone: the summary of what is
shared and the code to carry, both sealed under the phone key from the journal (the key rides
only in the authorization link's fragment, so the relay can read neither)."""

from __future__ import annotations

from typing import Any

from relay.client import RelayClient
from sending_site.collect import Collection
from sending_site.journal import TransferJournal
from transfer_codes.codes import RedemptionCode
from transfer_codes.phone import (
    PhoneSummary,
    decode_key,
    iso_date,
    seal_code,
    seal_summary,
    split_link,
)
from transfer_codes.wire import b64encode_text


def token_from_link(link: str) -> str:
    """The authorization token in a patient link (what the relay is shown)."""
    return split_link(link)[0]


def summary(
    c: Collection, status: dict[str, Any], expires_at: float, break_glass: bool
) -> PhoneSummary:
    """The phone's summary of `c`, from the relay's status (display names) and the journal."""
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
    )


async def upload(
    client: RelayClient, record: TransferJournal, phone_summary: PhoneSummary | None
) -> None:
    """Seal the current code (and the summary, when given) and leave them for the phone.
    Safe to repeat: the relay keeps the latest of each."""
    key = decode_key(record.phone_key)
    code = RedemptionCode.parse(record.code)
    body = {"code": b64encode_text(seal_code(key, code.grouped(), record.capability))}
    if phone_summary is not None:
        body["summary"] = b64encode_text(seal_summary(key, phone_summary))
    await client.request("PUT", f"/api/v1/transfers/{record.transfer_id}/phone", json=body)
