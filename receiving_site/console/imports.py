"""The imports the trauma console runs: each is one `redeem.redeem` (the same function
`trauma-relay redeem` runs) in the agent's event loop, followed by the pages.

An `Import` keeps what its events said (unlocked, the preview, progress, what was stored, the
result or why it stopped) and answers redeem's question when a person has confirmed the patient
and the local record on the identity page (`decide`). That answer is written to the state folder
(`console-imports/<transfer id>.json`) before the import goes on, so that after a crash the
restarted agent continues the same import (`Imports.resume_unfinished`) without asking again;
redeem's own state (saved key, staged images) makes the rest resume without spending the code
again or storing anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from receiving_site import errors, hold_record, state
from receiving_site.hold_record import HeldStudy
from receiving_site.holds import Hold
from receiving_site.redeem import (
    Filing,
    Preview,
    Progress,
    RedeemEvent,
    RedeemRequest,
    RedeemResult,
    Stored,
    Unlocked,
    Waiting,
    can_continue,
    redeem,
)
from receiving_site.staging import StagedObject
from site_agent.audit import AuditLog
from site_agent.dicom_text import date as shown_date
from site_agent.errors import AgentError, RelayRefused
from site_agent.local_state import write_atomically
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.errors import TransferCodeError
from transfer_codes.wire import Problem

log = logging.getLogger("receiving_site.console")

RECORDS = "console-imports"
LISTED_AS = "listed-as.json"  # in the transfer's staging folder: what the list calls it


@dataclass(frozen=True)
class ListedAs:
    """What the list of imports names a transfer by: the patient as the ER sent them and the
    study (description and date, DICOM values). Kept in the transfer's staging folder once the
    verified summary arrives, so that after a restart the list still names the patient (the
    agent is inside the hospital, beside the staged images that name them too); removed with
    that folder once the study is delivered or discarded."""

    patient_name: str
    study_description: str = ""
    study_date: str = ""

    @property
    def study(self) -> str:
        return " ".join(p for p in (self.study_description, shown_date(self.study_date)) if p)


class Stage(enum.Enum):
    STARTING = "starting"  # the code is being checked and redeemed
    OPENING = "opening"  # redeemed; waiting for the study's summary
    PREVIEW = "preview"  # the preview is shown; a person confirms the patient
    IMPORTING = "importing"  # confirmed: verifying and storing
    DONE = "done"
    HELD = "held"  # the identity check held it: nothing stored
    FAILED = "failed"  # stopped; Continue tries again, where that can help (`continuable`)
    UNFINISHED = "unfinished"  # found after a restart, not running
    DISCARDED = "discarded"  # held, then discarded in the holds queue: gone from this machine


@dataclass
class Import:
    """One transfer being imported through the console (mutable: its events update it)."""

    slot: str  # the code's locator, or the transfer id (a QR, or found after a restart)
    started_by: str
    started_from: str = ""  # the address the code or QR was entered from (for the audit log)
    recorded: asyncio.Task[None] | None = None  # its redemption's audit record, being written
    code: str = ""  # `state.code_digest` of the typed code that started it; empty for a QR
    transfer_id: str = ""
    sender: str = ""
    break_glass: bool = False
    consent_from_sending_site: bool = False
    stage: Stage = Stage.STARTING
    preview: Preview | None = None
    verified: int = 0
    listed: int = 0
    closed: bool = False
    stored: int = 0
    to_store: int = 0
    waiting_for_other_run: bool = False
    filing: Filing | None = None
    decided_by: str = ""  # who confirmed the patient and the local record (`filing`)
    decided_at: float = 0.0  # when (seconds since the epoch); 0: not known (an older record)
    resolved_by: str = ""  # who stored or discarded it in the holds queue, if someone did
    result: RedeemResult | None = None
    problem: str = ""
    continuable: bool = True  # False once it stopped where continuing cannot help
    not_accepted: bool = False  # the relay refused its code or QR with its generic refusal
    hold: Hold | None = None
    not_checked: bool = False  # held because the PACS could not be asked (IdentityNotChecked)
    held: HeldStudy | None = None  # the hold as the holds queue keeps it (images in the PACS)
    staged: dict[str, list[StagedObject]] = field(default_factory=dict)  # by series UID
    task: asyncio.Task[None] | None = None
    unlocked: asyncio.Event = field(default_factory=asyncio.Event)
    decision: asyncio.Future[Filing] | None = None

    listed_as_kept: ListedAs | None = None  # read back after a restart, before any preview

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def discarded(self) -> bool:
        return self.stage is Stage.DISCARDED

    @property
    def listed_as(self) -> ListedAs | None:
        """The patient and study the list names this import by; None before the summary."""
        if self.preview is None:
            return self.listed_as_kept
        summary = self.preview.summary
        return ListedAs(summary.patient_name, summary.study_description, summary.study_date)

    def on_event(self, event: RedeemEvent) -> None:
        if isinstance(event, Unlocked):
            self.transfer_id, self.sender = event.transfer_id, event.sender
            self.break_glass = event.break_glass
            self.consent_from_sending_site = event.consent_from_sending_site
            self.stage = Stage.IMPORTING if self.filing else Stage.OPENING
            self.unlocked.set()
        elif isinstance(event, Preview):
            self.preview = event
            if self.stage is Stage.OPENING:
                self.stage = Stage.PREVIEW
        elif isinstance(event, Progress):
            self.verified, self.listed = event.objects_done, event.objects_listed
            self.closed = event.manifest_closed
            if event.item is not None:
                self.staged.setdefault(event.item.entry.series_instance_uid, []).append(event.item)
        elif isinstance(event, Stored):
            self.stored, self.to_store = event.images_done, event.images_total
        elif isinstance(event, Waiting):
            self.waiting_for_other_run = True

    async def confirm(self, preview: Preview) -> Filing:
        """redeem's question, answered by `decide` (at once when decided before a restart)."""
        if self.filing is not None:
            return self.filing
        self.decision = asyncio.get_running_loop().create_future()
        return await self.decision


class Imports:
    """Every import of this agent, by transfer id once known; they run in the agent's loop."""

    def __init__(self, request: RedeemRequest, audit: AuditLog) -> None:
        self.request = request  # the relay, credential, PACS and issuer from the settings
        self.audit = audit
        self._by_transfer: dict[str, Import] = {}
        self._starting: list[Import] = []
        self._recording: set[asyncio.Task[None]] = set()  # audit records being written

    @property
    def state_dir(self) -> Path:
        return self.request.state_dir

    def all(self) -> list[Import]:
        return [*self._starting, *self._by_transfer.values()]

    def find(self, transfer_id: str) -> Import | None:
        return self._by_transfer.get(transfer_id)

    def running_for(self, slot: str) -> Import | None:
        return next((j for j in self.all() if j.slot == slot and j.running), None)

    def open_for(self, secret: RedemptionCode | Capability) -> Import | None:
        """The import of `secret` this agent has already: running for the same code or QR (a
        second click, the same code scanned twice); for a QR, which names its transfer, the
        import of that transfer whatever opened it (its typed code) and whatever its stage (also
        one found after a restart); for a code, the import that code redeemed, whatever its
        stage (imported, held, stopped, discarded; also one found after a restart). By the
        code itself, not its locator, which the relay gives another transfer once this one is
        gone. None: `secret` is to be redeemed."""
        if isinstance(secret, Capability):
            return self.find(secret.transfer_id) or self.running_for(secret.transfer_id)
        code = state.code_digest(secret.compact())
        redeemed = (j for j in self._by_transfer.values() if j.code == code)
        return self.running_for(str(secret.locator)) or next(redeemed, None)

    def start(
        self, secret: RedemptionCode | Capability, text: str, user: str, where: str = ""
    ) -> Import:
        """Redeem the code or QR `text` (already parsed into `secret`) for `user` at `where`;
        the import it already has (`open_for`) instead, started again by nothing. The
        redemption is audited once (`study-redeemed`), by the import itself: when the relay
        unlocks it, or refused, whoever waits for it (a second click, a page given up on)."""
        known = self.open_for(secret)
        if known is not None:
            return known
        if isinstance(secret, Capability):
            slot, code = secret.transfer_id, ""
        else:
            slot, code = str(secret.locator), state.code_digest(secret.compact())
        job = Import(slot=slot, started_by=user, code=code, started_from=where)
        self._starting.append(job)
        req = replace(self.request, secret=text)
        job.task = asyncio.create_task(self._run(job, req))
        return job

    def resume(self, job: Import) -> None:
        """Continue a stopped import from what this machine kept (never spends the code); not
        one delivered, or discarded in the holds queue (nothing is kept), nor one stopped where
        continuing cannot help (`redeem.can_continue`)."""
        if job.running or not job.transfer_id or job.stage in (Stage.DONE, Stage.DISCARDED):
            return
        if not job.continuable:
            return
        job.problem, job.hold, job.held, job.stage = "", None, None, Stage.OPENING
        job.not_checked = False
        job.staged = {}
        req = replace(self.request, resume=job.transfer_id)
        job.task = asyncio.create_task(self._run(job, req))

    def decide(self, job: Import, filing: Filing, user: str, at: float) -> None:
        """`user` confirmed the patient and the local record at `at` (seconds since the epoch):
        saved, then the import goes on."""
        job.filing, job.decided_by, job.decided_at = filing, user, at
        self._save(job)
        job.stage = Stage.IMPORTING
        if job.decision is not None and not job.decision.done():
            job.decision.set_result(filing)
        elif not job.running:
            self.resume(job)

    async def _run(self, job: Import, req: RedeemRequest) -> None:
        redeeming = not req.resume

        def on_event(event: RedeemEvent) -> None:
            job.on_event(event)
            if isinstance(event, Unlocked):
                self._registered(job)
                if redeeming:
                    self._record_redeemed(job, transfer=job.transfer_id)
            elif isinstance(event, Preview):
                self._keep_listed_as(job)

        try:
            job.result = await redeem(req, on_event, job.confirm)
            job.stage = Stage.DONE
            job.transfer_id = job.transfer_id or job.result.transfer_id
        except errors.IdentityHeld as e:
            job.stage, job.problem, job.hold = Stage.HELD, e.message, e.hold
            job.not_checked = isinstance(e, errors.IdentityNotChecked)
            if job.transfer_id:  # what the queue says, also how many images the PACS has
                job.held = await asyncio.to_thread(
                    hold_record.load, self.state_dir, job.transfer_id
                )
            # After review, the record is chosen again.
            job.filing, job.decided_by, job.decided_at = None, "", 0.0
        except (errors.ReceivingError, AgentError, TransferCodeError, OSError) as e:
            job.stage, job.problem, job.continuable = Stage.FAILED, _sentence(e), can_continue(e)
            job.not_accepted = _not_accepted(e)
        except Exception:
            log.exception("import %s stopped", job.transfer_id or "(not redeemed)")
            job.stage = Stage.FAILED
            job.problem = "The import stopped because of an error in this agent (see its log)."
        finally:
            if redeeming and not job.transfer_id and job.stage is Stage.FAILED:  # refused
                self._record_redeemed(job, outcome="refused")
            job.unlocked.set()
            if job in self._starting:
                self._starting.remove(job)
            if job.transfer_id:
                self._by_transfer[job.transfer_id] = job
                if job.stage is Stage.DONE:
                    self._forget(job.transfer_id)
                elif job.filing is None or not job.continuable:
                    self._save(job)
        if job.result is not None and job.result.delivered_before is None:
            await self.audit.arecord(
                "study-imported",
                who=job.decided_by or job.started_by or "-",
                where="agent",
                transfer=job.transfer_id,
                instances=job.result.instances,
                destination=job.result.destination,
            )

    # -- what the holds queue decided about a held import ---------------------------------------

    def resolved(self, transfer_id: str, result: RedeemResult, who: str) -> None:
        """The holds queue stored the study `transfer_id` (`result`), as `who` decided."""
        job = self.find(transfer_id)
        if job is None or job.running:
            return  # not imported through this console; or its own run reports
        job.stage, job.result, job.resolved_by = Stage.DONE, result, who
        job.problem, job.hold, job.held = "", None, None
        self._forget(transfer_id)

    def discarded(self, transfer_id: str, held: HeldStudy, who: str) -> None:
        """The holds queue discarded the study `transfer_id` (`held`), as `who` decided."""
        job = self.find(transfer_id)
        if job is None or job.running:
            return
        job.stage, job.held, job.resolved_by = Stage.DISCARDED, held, who
        job.problem, job.hold, job.staged = "", None, {}
        self._forget(transfer_id)

    def held_again(self, transfer_id: str, held: HeldStudy, hold: Hold | None) -> None:
        """The holds queue's decision about `transfer_id` held it again (`held`, `hold`), or
        saved a review copy of it: still held."""
        job = self.find(transfer_id)
        if job is None or job.running or job.stage is not Stage.HELD:
            return
        job.held = held
        if hold is not None:
            job.hold = hold

    def _record_redeemed(self, job: Import, **detail: str) -> None:
        """Audit the redemption `job` started (from the redemption's events, which are not
        awaited: written in a task of its own)."""
        record = self.audit.arecord(
            "study-redeemed", who=job.started_by, where=job.started_from or "-", **detail
        )
        task = asyncio.get_running_loop().create_task(record)
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)
        job.recorded = task

    def _registered(self, job: Import) -> None:
        """Once `job` is unlocked: known by its transfer id from now on."""
        if job.transfer_id:
            self._by_transfer[job.transfer_id] = job
            if job in self._starting:
                self._starting.remove(job)
            if job.filing is None:
                self._save(job)

    # -- what survives a restart ---------------------------------------------------------------

    def _record_path(self, transfer_id: str) -> Path:
        folder = state.folder(self.state_dir) / RECORDS
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / state.slot_file("import", transfer_id)

    def _save(self, job: Import) -> None:
        body = {
            "started_by": job.started_by,
            "decided_by": job.decided_by,
            "decided_at": job.decided_at,  # absent in records written before
            "filing": asdict(job.filing) if job.filing else None,
            # Why it stopped where continuing cannot help: after a restart it is not offered
            # Continue, nor resumed by itself (absent in records written before).
            "cannot_continue": "" if job.continuable else job.problem,
        }
        write_atomically(self._record_path(job.transfer_id), json.dumps(body).encode())

    def _listed_as_path(self, transfer_id: str) -> Path:
        return state.folder(self.state_dir) / transfer_id / LISTED_AS

    def _keep_listed_as(self, job: Import) -> None:
        """Keep what the list names `job` by; a failure to is only logged (it is only for the
        list, after a restart)."""
        if job.listed_as is None or job.listed_as == job.listed_as_kept:
            return
        try:
            path = self._listed_as_path(job.transfer_id)
            write_atomically(path, json.dumps(asdict(job.listed_as)).encode())
        except OSError as e:
            log.warning("import %s: could not keep its name for the list (%s)", job.transfer_id, e)
        else:
            job.listed_as_kept = job.listed_as

    def _forget(self, transfer_id: str) -> None:
        self._record_path(transfer_id).unlink(missing_ok=True)

    def _load(self, transfer_id: str) -> Import:
        job = Import(slot=transfer_id, started_by="", transfer_id=transfer_id)
        job.stage = Stage.UNFINISHED
        job.unlocked.set()  # redeemed before: its key is on this machine
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            body = json.loads(self._record_path(transfer_id).read_text("utf-8"))
            job.started_by, job.decided_by = str(body["started_by"]), str(body["decided_by"])
            job.decided_at = float(body.get("decided_at") or 0.0)
            if body["filing"]:
                job.filing = Filing(**body["filing"])
            if body.get("cannot_continue"):
                job.stage, job.continuable = Stage.FAILED, False
                job.problem = str(body["cannot_continue"])
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            body = json.loads(self._listed_as_path(transfer_id).read_text("utf-8"))
            job.listed_as_kept = ListedAs(**{k: str(v) for k, v in body.items()})
        with contextlib.suppress(errors.ReceivingError, OSError, ValueError, KeyError):
            saved = state.load_key(self.state_dir, transfer_id)
            job.sender, job.break_glass = saved.sender, saved.break_glass
            job.code = saved.code  # its code typed again opens it (`open_for`)
            job.consent_from_sending_site = saved.consent_from_sending_site
        return job

    def resume_unfinished(self) -> list[Import]:
        """After a start: every transfer this machine redeemed and has not delivered is listed;
        those a person had already confirmed continue at once."""
        found = []
        for transfer_id in state.unfinished(self.state_dir):
            if transfer_id in self._by_transfer:
                continue
            job = self._load(transfer_id)
            self._by_transfer[transfer_id] = job
            found.append(job)
            if job.filing is not None and job.continuable:
                self.resume(job)
        return found

    async def stop(self) -> None:
        tasks = [j.task for j in self.all() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._recording, return_exceptions=True)


def _not_accepted(e: Exception) -> bool:
    """Whether `e` is the relay's generic refusal of a code: unknown, spent (also by its QR),
    expired, revoked or locked; not a wrong code for a live transfer (`attempts_left`)."""
    return (
        isinstance(e, RelayRefused)
        and e.code == Problem.CODE_NOT_ACCEPTED
        and "attempts_left" not in e.extra
    )


def _sentence(e: Exception) -> str:
    if isinstance(e, errors.ReceivingError):
        return e.message
    if isinstance(e, AgentError):
        return e.for_console
    if isinstance(e, OSError):
        return f"This machine could not keep the study ({e.strerror or e})."
    return str(e)
