"""Re-issue a transfer's code (`trauma-relay reissue`, and the ER console's button): a fresh
code and QR for the same upload; the old ones stop working. And the transfer sheet of a sent
transfer, as its journal and the relay's status describe it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sending_site import abandon, journal, phone, refusals, refused
from sending_site.errors import TransferAbandoned, TransferDeclined
from sending_site.push import install_locks
from sending_site.sheet import TransferSheet
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from site_agent.errors import AgentError, outcome_unknown
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode


@dataclass(frozen=True)
class Reissued:
    record: journal.TransferJournal  # with the new code and capability
    # The relay's status after the re-issue; None when it could not be read (the code was
    # taken all the same: only a sheet, which needs it, cannot be made now).
    status: dict[str, Any] | None
    replaces: float | None  # when the code it replaces was issued
    # Whether the patient's phone was given the new code (or has none to give): False, it
    # still shows the code before, which no longer works.
    phone_updated: bool = True


async def reissue(
    state_dir: Path, transfer_id: str, relay: str | None, credential: str
) -> Reissued:
    """Give `transfer_id` (sent from this machine) a new code. Raises `TransferAbandoned`
    when it was given up, `TransferDeclined` when the patient or family said no, and
    `RelayRefused` or `RelayUnreachable` (`unsent`) when the relay did not take the new code
    (the code before it stays, as it stood; a status read first that failed is `unsent` too:
    nothing was asked). `RelayUnreachable` not `unsent`: the request left and no answer came,
    so the new code stays in the journal not confirmed (`TransferJournal.code_confirmed`): not
    shown or printed until a re-issue is. Once the relay took it, the phone's documents and
    the status read after do not fail the re-issue (`Reissued.phone_updated`,
    `Reissued.status` None). One re-issue at a time (`journal.reissuing`)."""
    async with journal.reissuing(state_dir):
        return await _reissue(state_dir, transfer_id, relay, credential)


async def _reissue(
    state_dir: Path, transfer_id: str, relay: str | None, credential: str
) -> Reissued:
    record = journal.load(state_dir, transfer_id)
    if record.abandoned:

        def facts(reason: str) -> str:
            return (
                f"Transfer {record.transfer_id} was given up ({reason}), so its code cannot be "
                "re-issued. Send the study again"
            )

        raise TransferAbandoned(
            f"{facts(record.abandoned)} with trauma-relay push.",
            console=f"{facts(abandon.reason_at_console(record.abandoned))} from its page: it "
            "goes as a new transfer with a new code.",
        )
    replaces = record.issued_at[-1] if record.issued_at else None
    async with RelayClient(relay or record.relay, credential) as client:
        try:
            before = await client.status(record.transfer_id)
        except RelayUnreachable as e:  # nothing asked yet: the code before it stays
            raise e.before_asking() from e
        if refused.by_patient(before):  # no new code for what they said no to
            raise TransferDeclined.said(refused.for_reissue(before, record.transfer_id))
        old = record
        # Saved first, not confirmed: if the relay takes the new code and we are interrupted,
        # it is kept, though not shown or printed until a re-issue is confirmed.
        record = journal.change_code(
            state_dir,
            transfer_id,
            code=RedemptionCode.generate(record.locator).compact(),
            capability=Capability.generate(record.transfer_id).to_text(),
        )
        try:
            await install_locks(client, record, "reissue")
        except (RelayRefused, RelayUnreachable) as e:
            if outcome_unknown(e):  # it left and no answer came: the relay may hold it
                raise _unanswered(e, transfer_id) from e
            # It did not take the new code (refused, or never reached it): the old one is
            # still the code, as it stood.
            journal.change_code(
                state_dir,
                transfer_id,
                code=old.code,
                capability=old.capability,
                confirmed=old.code_confirmed,
                only_if=record.code,
            )
            raise
        # Only a code the relay took counts as issued: it is the one the next sheet replaces.
        record = journal.change_code(
            state_dir,
            transfer_id,
            code=record.code,
            capability=record.capability,
            issued_at=time.time(),
            only_if=record.code,
        )
        # The relay took the code: from here nothing undoes the re-issue, so a failure is
        # told, not raised (raised, the new code would be shown nowhere).
        phone_updated = True
        if record.phone_key:  # the patient's phone shows the new code from now on
            try:
                await phone.upload(client, record, None)
            except AgentError:
                phone_updated = False
        try:
            status: dict[str, Any] | None = await client.status(record.transfer_id)
        except AgentError:
            status = None
    return Reissued(record, status, replaces, phone_updated)


# Said where the patient's phone could not be given a new code (`Reissued.phone_updated`).
PHONE_NOT_UPDATED = (
    "The patient's phone could not be given the new code: it still shows the old one, which no "
    "longer works. Give them the new code."
)


def _unanswered(e: RelayUnreachable, transfer_id: str) -> RelayUnreachable:
    """The re-issue's request reached the relay and no answer came (`e`): the new code stays in
    the journal, not confirmed, and staff are told to give another."""
    why = f" ({e.reason})" if e.reason else ""
    said = refusals.unconfirmed(transfer_id)
    return RelayUnreachable(
        f"No answer came from the relay{why}. {said.cli}",
        e.reason,
        console=f"No answer came from the relay{why}. {said.console}",
    )


def sheet_of(
    record: journal.TransferJournal,
    status: dict[str, Any],
    *,
    relay: str,
    site_phone: str,
    reissued: bool = False,
    replaces: float | None = None,
) -> TransferSheet:
    """The transfer sheet of a sent transfer, with its current code."""
    return TransferSheet(
        transfer_id=record.transfer_id,
        destination=status["recipient"]["display_name"] or record.recipient,
        sender=status["sender"]["display_name"],
        code=RedemptionCode.parse(record.code).grouped(),
        capability=record.capability,
        expires_at=record.expires_at,
        break_glass=bool(status["break_glass"]),
        relay=relay,
        site_phone=site_phone,
        study_description=record.study_description,
        series_count=record.series_count,
        instance_count=len(record.objects),
        awaiting_authorization=status["authorized_by"] is None,
        reissued=reissued,
        replaces_code_issued_at=replaces,
    )
