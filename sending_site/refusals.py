"""The sentences a push or a break-glass stops with, from what the plan knows (`plan`): plain,
calm, and saying what to do next. Pure."""

from __future__ import annotations

import time

from sending_site.abandon import Abandoned, Seen, reason_at_console
from sending_site.errors import Said
from sending_site.journal import TransferJournal
from site_agent.dicom_text import how_many_images
from site_agent.errors import RelayRefused
from site_agent.terminal_text import shown
from transfer_codes.codes import RedemptionCode

# The ER console's buttons, as its sentences name them.
SEND_AS_NEW = "the button below"
TRY_AGAIN = "Try again with the button below."


def grouped(record: TransferJournal) -> str:
    return RedemptionCode.parse(record.code).grouped()


def sentence(e: Exception) -> str:
    text = str(e).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def at(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def destination(seen: Seen, record: TransferJournal) -> str:
    return shown(seen.recipient_display_name or record.recipient)


def delivered(record: TransferJournal, seen: Seen) -> Said:
    receipt = seen.receipt or {}
    where = {"pacs": "in their PACS", "folder": "in a folder for review"}
    stored = (
        f"{how_many_images(receipt['instances'])} stored " if "instances" in receipt else "stored "
    )
    stored += where.get(str(receipt.get("destination")), "there")
    when = f" on {at(seen.delivered_at)}" if seen.delivered_at else ""
    facts = (
        f"This study was already delivered to {destination(seen, record)}{when} (transfer "
        f"{record.transfer_id}: {stored}). Nothing was sent. If they ask for it again, "
    )
    return Said(
        facts + "run the same command with --replace.",
        facts + f"send it as a new transfer ({SEND_AS_NEW}): it has a new code, which the "
        "patient or family authorize on their phone.",
    )


def already_sent(record: TransferJournal, seen: Seen) -> Said:
    """The console's words name the transfer, not its code: the job page's record keeps them,
    and it holds no secret (the transfer's page shows the code). A code a re-issue left not
    confirmed is not said to work (`unconfirmed` in its place)."""
    facts = (
        f"Transfer {record.transfer_id} already carries this patient's study to "
        f"{destination(seen, record)}, sent from "
    )
    if not record.code_confirmed:
        said = unconfirmed(record.transfer_id)
        return Said(
            facts + f"files that differ from these. Nothing was sent. {said.cli} To send these "
            "files instead, run the same command with --replace.",
            facts + f"images that differ from these. Nothing was sent. {said.console} To send "
            f"these images instead, send them as a new transfer ({SEND_AS_NEW}).",
        )
    then = (
        " still works. Nothing was sent. If that code went with the patient, nothing more is "
        "needed; to send "
    )
    return Said(
        facts + f"files that differ from these; its code {grouped(record)}" + then + "these "
        "files instead and stop that code, run the same command with --replace.",
        facts
        + "images that differ from these; its code (on its transfer sheet)"
        + then
        + f"these images instead and stop that code, send them as a new transfer ({SEND_AS_NEW}).",
    )


def not_replaced(record: TransferJournal, refusal: RelayRefused) -> Said:
    facts = (
        f"Transfer {record.transfer_id}, which this one replaces, could not be withdrawn "
        f"({refusal})."
    )
    return Said(f"{facts} Run the same command again.", f"{facts} {TRY_AGAIN}")


def withdrawn(failure: Exception, gone: Abandoned) -> str:
    if gone.redeemed:
        return (
            f"{sentence(failure)} Transfer {gone.transfer_id} cannot be finished, and the "
            "trauma center has already redeemed its code: call them to say the images will come "
            "as a new transfer, fix the problem and send the study again."
        )
    return (
        f"{sentence(failure)} Transfer {gone.transfer_id} could not be finished, so it was "
        f"withdrawn: its code {gone.code} no longer works. Fix the problem and send the study "
        "again; it goes as a new transfer with a new code."
    )


def glass_abandoned(record: TransferJournal) -> Said:
    def facts(reason: str) -> str:
        return (
            f"Transfer {record.transfer_id} was given up ({reason}), so break-glass cannot be "
            "added to it."
        )

    return Said(
        f"{facts(record.abandoned)} Send the study again with trauma-relay push --break-glass.",
        f"{facts(reason_at_console(record.abandoned))} Send the study again from its page, then "
        "authorize the new transfer by break-glass.",
    )


def glass_too_early() -> Said:
    facts = "This transfer has no code yet (its push stopped before the code was shown)."
    return Said(
        f"{facts} Run the same push command again with --break-glass.",
        f"{facts} Once its page shows the code, authorize it by break-glass there.",
    )


def glass_not_needed(record: TransferJournal, seen: Seen) -> str:
    return (
        f"The {seen.authorized_by} already authorized transfer {record.transfer_id}, so "
        "break-glass is not needed: the trauma center can redeem its code as it is."
    )


def glass_too_late(record: TransferJournal, why: str) -> Said:
    facts = (
        f"Break-glass can no longer be added to transfer {record.transfer_id}: {why}. If the "
        "images are still needed, send the study again"
    )
    return Said(
        f"{facts} with trauma-relay push --break-glass.",
        f"{facts} from its page, then authorize the new transfer by break-glass.",
    )


# The relay's own sentence for a trauma center it does not offer (`Problem.UNKNOWN_SITE`) names
# the command line's list of destinations; the console chose it from the relay's list a moment
# ago, so it was disabled or removed meanwhile. Trying again is offered: it may be enabled again.
DESTINATION_GONE_AT_CONSOLE = (
    "The trauma center chosen is not on the relay just now: its operator may have disabled it. "
    "Ask the relay's operator (IT), then press Try again; or send the study to another trauma "
    "center from its page."
)


def unconfirmed(transfer_id: str) -> Said:
    """A code a re-issue sent to the relay with no answer back (`code_confirmed` false in the
    journal): the relay may hold it or still the code before it, so neither is known to work."""
    return Said(
        "The new code may not have reached the relay, so it is not shown or printed, and the "
        f"code before it may no longer work. Run trauma-relay reissue {transfer_id} again, then "
        "give the patient the new code.",
        "The new code may not have reached the relay, so it is not shown or printed, and the "
        "code before it may no longer work. Press Give a new code again, then print the new "
        "transfer sheet.",
    )
