"""Pushes the ER console starts, run in the agent as background jobs through the one push
pipeline (`sending_site.push.push`), and resumed after the agent is stopped or killed.

Each job is a small JSON file in `<state>/sending/jobs/`, written before its push starts and
again when it learns its transfer id or ends. On start the agent runs every job that had not
ended again: the push journal makes a push of the same study resume where it stopped, so
nothing is uploaded twice. A job file holds no secret (the code stays in the push journal).

`start_push` is the one place a job's push starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sending_site import refusals
from sending_site.errors import AlreadyDelivered, AlreadySent, SendingError
from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.settings import InboxSettings
from sending_site.push import Progress, PushEvent, PushRequest, Ready, Retrying, push
from sending_site.source import Arrivals
from sending_site.stretching import SpareSecret
from site_agent.credential import AgentCredential
from site_agent.errors import AgentError, RelayRefused
from site_agent.local_state import site_folder, write_atomically
from site_agent.local_time import how_long
from transfer_codes.wire import Problem

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRecord:
    """What was started, as kept on disk."""

    job_id: str
    study_instance_uid: str
    recipient: str  # the trauma center's name in the relay's directory
    started_by: str
    started_at: float  # seconds since the epoch
    transfer_id: str = ""
    ended: bool = False
    problem: str = ""  # why it stopped, in words for staff; empty when it finished
    # It stopped because a transfer of the study was delivered, or is live from other images:
    # staff may send it as a new transfer, which replaces that one (`replace`).
    replaceable: bool = False
    # Replace a delivered or live transfer of the study (push's --replace), until this job's
    # own transfer exists: a job started again after that resumes it instead.
    replace: bool = False
    # It stopped at a refusal trying again cannot cure (the error's `definitive`): the console
    # offers no "Try again" for it, and refuses a retry posted anyway.
    definitive: bool = False


@dataclass(frozen=True)
class PushSetup:
    """What every push of the agent shares: from its settings."""

    relay: str
    relay_credential: AgentCredential  # as the agent's settings name it
    state_dir: Path
    inbox: InboxSettings  # the spool, its stable age and the PACS the study is followed with
    # The inbox running in this process, which a push following a study listens to.
    keeper: Callable[[], Keeper | None] = lambda: None

    def credential(self) -> str:
        """The site's relay credential, read when needed (`AgentError` saying what to fix)."""
        return self.relay_credential.read()


@dataclass
class Job:
    """A job while the agent runs: its record and what its push said last."""

    record: JobRecord
    ready: Ready | None = None
    progress: Progress | None = None
    retrying: str = ""
    task: asyncio.Task[None] | None = None
    source: SpooledStudy | None = None  # the study it follows while images still arrive
    # Until the source says the study is complete (or stopped), or has named every image of
    # a study that has settled; again if an image arrives after that.
    arriving: bool = True
    stopped: bool = False  # staff stopped waiting for more images

    def stop_following(self) -> bool:
        """Send what has arrived and close the transfer marked incomplete; False when the
        study is no longer followed."""
        if self.source is None or not self.running or not self.arriving:
            return False
        self.source.stop()
        return True

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class PushJobs:
    """The agent's jobs, kept in `folder`."""

    def __init__(self, folder: Path, setup: PushSetup) -> None:
        self.folder = folder
        self.setup = setup
        self._jobs: dict[str, Job] = {}
        # The next new transfer's code, stretched ahead: staff see it without waiting.
        self.spare = SpareSecret()

    def save(self, record: JobRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps(dataclasses.asdict(record), sort_keys=True).encode()
        write_atomically(self.folder / f"{record.job_id}.json", body)

    def stored(self) -> list[JobRecord]:
        """Every job on disk, oldest first; a damaged file is logged and left alone."""
        records = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                records.append(JobRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError) as e:
                LOGGER.warning("Could not read the push job %s: %s", path.name, e)
        return sorted(records, key=lambda r: r.started_at)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def of_transfer(self, transfer_id: str) -> Job | None:
        found = [j for j in self._jobs.values() if j.record.transfer_id == transfer_id]
        return found[-1] if found else None

    def add(self, job: Job) -> None:
        self._jobs[job.record.job_id] = job

    def update(self, job: Job, **changes: Any) -> None:
        job.record = dataclasses.replace(job.record, **changes)
        self.save(job.record)

    async def stop(self) -> None:
        """Cancel running pushes (they resume at the next start)."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def new_job(study_instance_uid: str, recipient: str, user: str, now: float) -> JobRecord:
    return JobRecord(secrets.token_hex(8), study_instance_uid, recipient, user, now)


class _Watched:
    """The job's `SpooledStudy`, noting on the job when the study is complete or stopped."""

    def __init__(self, job: Job, source: SpooledStudy) -> None:
        self.job, self.source = job, source

    async def arrivals(self) -> Arrivals:
        arrived = await self.source.arrivals()
        if arrived.complete or arrived.stopped:
            self.job.arriving, self.job.stopped = False, arrived.stopped
        elif arrived.paths:
            self.job.arriving = not arrived.settled
        return arrived


def start_push(jobs: PushJobs, record: JobRecord) -> Job:
    """Save `record` and run its push in the background: the spooled study, followed while
    images still arrive (cut-through), through the one push pipeline: the manifest is closed
    once the study is complete (or staff stop waiting, `Job.stop_following`). The job's `ready`
    and `progress` follow the push's events; its record keeps the transfer id and how it
    ended. Returns the job at once."""
    jobs.save(record)
    job = Job(record)
    jobs.add(job)
    # A job that has its transfer already resumes it, with its code: it needs no new one.
    stretched = None if record.transfer_id else jobs.spare.take()

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            job.ready, job.retrying = event, ""
            if job.record.transfer_id != event.transfer_id or job.record.replace:
                jobs.update(job, transfer_id=event.transfer_id, replace=False)
        elif isinstance(event, Progress):
            job.progress, job.retrying = event, ""
        elif isinstance(event, Retrying):
            why = f" ({event.reason})" if event.reason else ""
            job.retrying = (
                f"The relay could not be reached{why}; trying again in {how_long(event.delay)}."
            )

    async def run() -> None:
        setup = jobs.setup
        job.source = source = SpooledStudy(
            setup.inbox, record.study_instance_uid, keeper=setup.keeper()
        )
        try:
            request = PushRequest(
                paths=[],
                source=_Watched(job, source),
                relay=setup.relay,
                recipient=record.recipient,
                credential=setup.credential(),
                state_dir=setup.state_dir,
                stretched=stretched,
                replace=record.replace,
            )
            await push(request, on_event)
        # The log names what stopped it, not the sentence: some sentences hold a live code.
        except (AlreadyDelivered, AlreadySent) as e:
            LOGGER.info("The push job %s sent nothing (%s).", record.job_id, type(e).__name__)
            jobs.update(
                job, ended=True, problem=e.for_console, replaceable=True, definitive=e.definitive
            )
            return
        except SendingError as e:
            LOGGER.warning("The push job %s stopped (%s).", record.job_id, type(e).__name__)
            jobs.update(job, ended=True, problem=e.for_console, definitive=e.definitive)
            return
        except AgentError as e:  # the relay or the settings: never a code
            LOGGER.warning("The push job %s stopped: %s", record.job_id, e.detail)
            gone = isinstance(e, RelayRefused) and e.code == Problem.UNKNOWN_SITE
            problem = refusals.DESTINATION_GONE_AT_CONSOLE if gone else e.for_console
            jobs.update(job, ended=True, problem=problem, definitive=e.definitive)
            return
        except Exception:
            LOGGER.exception("The push job %s failed", record.job_id)
            jobs.update(
                job,
                ended=True,
                problem="The upload stopped because of an error in "
                "the agent. Start it again from the study's page; it resumes.",
            )
            return
        finally:
            job.retrying = ""  # the waits it announced went with it
            await source.close()
        jobs.update(job, ended=True, problem="")
        LOGGER.info(
            "The push job %s finished (transfer %s).", record.job_id, job.record.transfer_id
        )

    job.task = asyncio.create_task(run(), name=f"push-{record.job_id}")
    return job


def lifetime(
    jobs: PushJobs, clock: Callable[[], float] = time.time
) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp `cleanup_ctx` lifetime: load the jobs on disk, start again those that had
    not ended (their pushes resume), and cancel running ones on stop."""

    async def context(app: Any) -> AsyncIterator[None]:
        jobs.spare.prepare()
        for record in jobs.stored():
            if record.ended:
                jobs.add(Job(record))
            else:
                LOGGER.info("Resuming the push job %s.", record.job_id)
                start_push(jobs, record)
        yield
        await jobs.stop()

    return context


def jobs_folder(state_dir: Path) -> Path:
    return site_folder(state_dir, "sending") / "jobs"
