"""What an import step's form says when it is posted from a page left open after the import
moved on (another tab, another registrar on another machine): the choice it sent was not used
and nothing was changed by the click, what the import became (confirmed by whom, when, under
which record; stored, held, discarded, stopped), and what to do if that is wrong. Briefly when
the choice agrees with the record already confirmed. Pure: the import page shows it once, to
the person who posted (`site_agent.console.notices`), and the refusal is audited under the
step's action (`Step`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from receiving_site.console.errors import ContinuingCannotHelp
from receiving_site.console.imports import Import, Stage
from site_agent.dicom_text import how_many_images
from site_agent.local_time import utc_time

WHY = "moved-on"  # the audit record's `why` for a step posted after the import moved on


class Step(enum.Enum):
    """An import step's form, by the audit action its refusal is recorded under."""

    RECORD_CHECK = "import-record-checked"  # the record number typed, or picked on the worklist
    CONFIRM = "import-confirmed"  # Import into the PACS, under the checked record
    CONTINUE = "import-continued"  # Continue, or Check again from a held import


@dataclass(frozen=True)
class Sent:
    """What the stale form asked for: the record number (and issuer, when picked from the
    worklist) it would have used; empty for Continue."""

    local_patient_id: str = ""
    local_issuer: str = ""
    from_worklist: bool = False


@dataclass(frozen=True)
class StaleStep:
    """The notice: a heading, then its sentences in order; `agrees` when the refused choice is
    the record already confirmed (nothing to worry about)."""

    heading: str
    sentences: tuple[str, ...]
    agrees: bool = False


def is_stale(job: Import, step: Step) -> bool:
    """Whether `step`, posted now, meets an import that moved on from where its form was shown.
    (A confirmation also needs the record check it confirms, kept by the pages.)"""
    if step in (Step.RECORD_CHECK, Step.CONFIRM):
        return job.stage is not Stage.PREVIEW or job.preview is None
    stopped = job.stage in (Stage.FAILED, Stage.UNFINISHED, Stage.HELD)
    return job.running or not job.transfer_id or not stopped or not job.continuable


def _record(local_patient_id: str, issuer: str | None) -> str:
    return f"record {local_patient_id}" + (f" (issuer {issuer})" if issuer else "")


def _confirmed_record(job: Import) -> tuple[str, str] | None:
    """The record this import was confirmed (or filed) under: (number, issuer)."""
    if job.filing is not None and job.decided_by:
        return job.filing.local_patient_id, job.filing.local_issuer or ""
    if job.stage is Stage.DONE and job.result is not None and job.result.filed_under is not None:
        filed = job.result.filed_under
        return filed.patient_id, filed.issuer_of_patient_id
    return None


def _confirmed_by(job: Import, record: tuple[str, str]) -> str:
    moment = f" on {utc_time(job.decided_at)}" if job.decided_at else ""
    return f"{job.decided_by} confirmed it{moment} under {_record(*record)}"


def _became(job: Import, record: tuple[str, str] | None) -> str:
    """What the import is now, in one or two sentences."""
    stage = job.stage
    if stage is Stage.IMPORTING:
        if record is not None and job.decided_by:
            return (
                f"This import was already confirmed: {_confirmed_by(job, record)}. It is being "
                "imported into the PACS now."
            )
        return "This import was already confirmed, and is being imported into the PACS now."
    if stage is Stage.DONE and job.result is not None:
        if job.result.delivered_before is not None:
            return "This study was already delivered from this machine."
        images = how_many_images(job.result.instances)
        under = f" under {_record(*record)}" if record is not None else ""
        if job.resolved_by:
            return (
                f"This study was held for review, and {job.resolved_by} stored it in the PACS "
                f"from the holds queue{under}: {images}."
            )
        if record is not None and job.decided_by:
            return (
                f"This import was already confirmed: {_confirmed_by(job, record)}. "
                f"It is done: {images} are in the PACS."
            )
        return f"This study was already stored in the PACS{under}: {images}."
    if stage is Stage.HELD:
        reason = job.hold.reason if job.hold else job.problem
        return (
            f"{reason}; this import was held for review, and nothing more happens to it until "
            "a person decides in the holds queue."
        )
    if stage is Stage.DISCARDED:
        return (
            f"This study was held for review, and {job.resolved_by or 'a person'} discarded it "
            "from this machine in the holds queue."
        )
    if stage is Stage.FAILED:
        return f"This import stopped. {job.problem}"
    if stage is Stage.UNFINISHED:
        return "This import stopped when the agent restarted."
    if stage is Stage.PREVIEW:
        return (
            "This import is at its preview again, waiting for a person to check the patient and "
            "the record: the record check your page showed is no longer current."
        )
    return "This import is being opened again (someone pressed Continue or Check again)."


def _next(job: Import, record: tuple[str, str] | None) -> str:
    """What to do if what the import became is wrong, or to go on."""
    stage = job.stage
    if stage in (Stage.IMPORTING, Stage.DONE) and record is not None:
        return (
            f"If {record[0]} is not this patient's record, call the PACS administrators now to "
            "move these images to the right record, and tell radiology: nothing on this page "
            "changes where they are filed."
        )
    if stage is Stage.HELD:
        return "Decide what happens to it in the holds queue (Holds, above)."
    if stage is Stage.DISCARDED:
        return (
            f"If it is needed, ask {job.sender or 'the sending hospital'} to send it again with "
            "a new code."
        )
    if stage in (Stage.FAILED, Stage.UNFINISHED):
        if not job.continuable:
            return ContinuingCannotHelp().detail
        return (
            "Press Continue below: it goes on from where it stopped, without using the code again."
        )
    if stage is Stage.PREVIEW:
        return "Check the patient and the record again below."
    if stage in (Stage.STARTING, Stage.OPENING):
        return "Wait for its preview below, then check the patient and the record."
    return ""


def _agrees(sent: Sent, record: tuple[str, str] | None) -> bool:
    if record is None or not sent.local_patient_id:
        return False
    number, issuer = record
    same_issuer = not (sent.from_worklist and sent.local_issuer and issuer) or (
        sent.local_issuer == issuer
    )
    return sent.local_patient_id == number and same_issuer


def notice(job: Import, step: Step, sent: Sent) -> StaleStep:
    """What the page says to `step` posted with `sent` after `job` moved on (`is_stale`)."""
    record = _confirmed_record(job)
    if step is not Step.CONTINUE and _agrees(sent, record) and record is not None:
        moment = f" on {utc_time(job.decided_at)}" if job.decided_at and job.decided_by else ""
        who = job.decided_by or job.resolved_by or "someone"
        return StaleStep(
            "Already confirmed",
            (
                f"{who} already confirmed this import{moment} under {_record(*record)}, the "
                "record you chose. Nothing was changed by your click, and there is nothing "
                "more to do.",
            ),
            agrees=True,
        )
    if sent.local_patient_id:
        picked = ", picked from the worklist" if sent.from_worklist else ""
        choice = _record(sent.local_patient_id, sent.local_issuer if sent.from_worklist else "")
        unchanged = (
            f"Your choice ({choice}{picked}) was not used: nothing was changed by this click."
        )
    else:
        unchanged = "Your click was not used: nothing was changed by it."
    sentences = (unchanged, _became(job, record), _next(job, record))
    return StaleStep("Your choice was not used", tuple(s for s in sentences if s))
