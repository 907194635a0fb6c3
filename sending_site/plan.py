"""The sender's decisions for one push, as a pure state machine: no I/O, time passed in.

    choosing --statuses_received--> giving_up | creating | preparing | stopped
    giving_up --revoke_answered (the last)--> creating | preparing
    giving_up --revoke_answered (the patient or family said no)--> stopped
    creating --transfer_created--> preparing
    preparing --transfer_seen--> replacing | uploading | finished
    replacing --revoke_answered (the last)--> uploading | finished
    uploading --objects_added (a followed study grew)--> uploading
    uploading --upload_finished--> finished
    preparing | uploading --send_failed (for good)--> withdrawing --revoke_answered--> withdrawn

Drawn in docs/sending.md; keep the two in step. `push` carries the decisions out in order (the
relay, the files, the journal) and tells the plan what happened, with methods named after it;
each answers with the next decisions (`sending_site.decisions`). A failure that running the
same command again may cure ends the run where it is (`Fail`), with the journal as it was.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sending_site import abandon, errors, refusals, refused
from sending_site.abandon import Abandoned, NoAnswer, Seen
from sending_site.decisions import (
    AddBreakGlass,
    Create,
    Decision,
    Fail,
    GiveUp,
    InstallLocks,
    LeavePhoneDocuments,
    Look,
    NewTransfer,
    Ready,
    Save,
    Show,
    Upload,
    Wanted,
)
from sending_site.journal import JournalObject, TransferJournal
from site_agent.errors import RelayRefused
from transfer_codes.phone import authorization_link
from transfer_codes.wire import TransferState

if TYPE_CHECKING:
    from site_agent.client import Holdings


class Stage(enum.StrEnum):
    CHOOSING = "choosing"  # which earlier transfer of the study to resume, give up or stop at
    GIVING_UP = "giving_up"  # earlier transfers the relay can no longer finish
    CREATING = "creating"
    PREPARING = "preparing"  # locks, break-glass, the phone's documents
    REPLACING = "replacing"  # earlier transfers this one replaces, before its code is shown
    UPLOADING = "uploading"
    WITHDRAWING = "withdrawing"  # this transfer failed for good
    FINISHED = "finished"
    STOPPED = "stopped"  # the study was delivered, or is already on its way from other files
    WITHDRAWN = "withdrawn"


FINAL_STAGES = frozenset({Stage.FINISHED, Stage.STOPPED, Stage.WITHDRAWN})


class _Purpose(enum.Enum):
    GONE = "gone"  # the relay can no longer finish it
    REPLACED = "replaced"  # this push replaces it
    FAILED = "failed"  # the transfer being sent, refused for good


@dataclass(frozen=True)
class _Pending:
    record: TransferJournal
    reason: str
    purpose: _Purpose
    failure: Exception | None = None  # what made a FAILED transfer fail
    said_no: Seen | None = None  # the patient or family revoked it on their phone


class PushPlan:
    """One push of `wanted`, given this site's journals (`journal.every`). `spare_phone_key` is
    given to a resumed journal written before the phone pages, which has none."""

    def __init__(
        self, wanted: Wanted, journals: Iterable[TransferJournal], spare_phone_key: str
    ) -> None:
        self.wanted = wanted
        self.stage = Stage.CHOOSING
        self.spare_phone_key = spare_phone_key
        # The relay is asked about each of these, newest first.
        self.candidates = sorted(
            (j for j in journals if _same_study(wanted, j)),
            key=lambda j: (-j.created_at, j.transfer_id),
        )
        self.current: TransferJournal | None = None
        self.resumed = False
        self.given_up: list[Abandoned] = []
        self._pending: dict[str, _Pending] = {}
        self._replaced: list[_Pending] = []
        self._look: tuple[Seen, Holdings] | None = None  # the relay's view of `current`
        self._glass = False
        self._glass_added = False  # by this run (`_glass` alone: it was there before)

    # -- events ------------------------------------------------------------------------------

    def statuses_received(self, answers: Mapping[str, Seen | None]) -> list[Decision]:
        """The relay described each candidate (None: it has no record of it)."""
        self._expect(Stage.CHOOSING)
        gone: list[_Pending] = []
        delivered: list[tuple[TransferJournal, Seen]] = []
        same: list[TransferJournal] = []  # live, same files: resumable
        unfinished: list[TransferJournal] = []  # live, other files, upload not finished
        incomplete: list[TransferJournal] = []  # live, other files, closed marked incomplete
        finished: list[tuple[TransferJournal, Seen]] = []  # live, other files, all uploaded
        for record in self.candidates:
            seen = answers[record.transfer_id]
            why = abandon.gone_reason(seen)
            if why or seen is None:
                said_no = seen if seen is not None and seen.by_patient else None
                gone.append(_Pending(record, why, _Purpose.GONE, said_no=said_no))
            elif seen.state == TransferState.DELIVERED:
                delivered.append((record, seen))
            elif record.done and record.incomplete:  # even of the same files: it is over
                incomplete.append(record)
            elif _resumable(record, self.wanted):
                same.append(record)
            elif not record.done:
                unfinished.append(record)
            else:
                finished.append((record, seen))
        if self.wanted.replace:
            live = [r for r, _ in delivered] + same + unfinished + [r for r, _ in finished]
            self._replace(live + incomplete, abandon.REPLACED_AS_ASKED)
        elif delivered:
            return self._stop(errors.AlreadyDelivered.said(refusals.delivered(*delivered[0])))
        elif same:
            self.current, self.resumed = same[0], True
            self._replace([r for r in same[1:] if not r.done], abandon.SAME_FILES)
            self._replace(unfinished, abandon.REPLACED)
            self._replace(incomplete, abandon.SENT_INCOMPLETE)
        elif finished:
            return self._stop(errors.AlreadySent.said(refusals.already_sent(*finished[0])))
        else:
            self._replace(unfinished, abandon.REPLACED)
            self._replace(incomplete, abandon.SENT_INCOMPLETE)
        if not gone:
            return self._go_on()
        self.stage = Stage.GIVING_UP
        return self._give_up(gone)

    def revoke_answered(self, transfer_id: str, refusal: Exception | None) -> list[Decision]:
        """The relay answered the revocation of a transfer being given up (`refusal` None: it
        was revoked, or did not need to be)."""
        self._expect(Stage.GIVING_UP, Stage.REPLACING, Stage.WITHDRAWING)
        pending = self._pending.pop(transfer_id)
        outcome = ""  # revoked, or it did not need to be
        if refusal is not None:
            meaning = abandon.revoke_refusal(refusal)
            if meaning is None:
                return _kept(pending, refusal)
            outcome = meaning
        reason = pending.reason + outcome
        record = dataclasses.replace(pending.record, done=True, abandoned=reason)
        gone = Abandoned(record.transfer_id, refusals.grouped(record), reason, bool(outcome))
        if pending.said_no is not None and not self.wanted.replace:
            # They said no: no new transfer until the ER has spoken with them (the next run,
            # or --replace, starts one, which they authorize on their phone).
            self.stage = Stage.WITHDRAWN if pending.failure is not None else Stage.STOPPED
            declined = errors.TransferDeclined.said(
                refused.for_push(pending.said_no.revocation, record.transfer_id, gone.code)
            )
            return [Save(record), Fail(declined, pending.failure)]
        if pending.failure is not None:
            self.stage = Stage.WITHDRAWN
            withdrawn = errors.TransferWithdrawn(refusals.withdrawn(pending.failure, gone))
            return [Save(record), Fail(withdrawn, pending.failure)]
        self.given_up.append(gone)
        if self._pending:
            return [Save(record)]
        if self.stage is Stage.GIVING_UP:
            return [Save(record), *self._go_on()]
        return [Save(record), *self._announce()]

    def transfer_created(self, now: float, new: NewTransfer) -> list[Decision]:
        """The relay created the transfer (at `now`, seconds since the epoch, on this machine)."""
        self._expect(Stage.CREATING)
        self.current = TransferJournal(
            transfer_id=new.transfer_id,
            relay=self.wanted.relay,
            recipient=self.wanted.recipient,
            data_key=new.data_key,
            locator=new.locator,
            code=new.code,
            capability=new.capability,
            authorization_token=new.authorization_token,
            expires_at=new.expires_at,
            objects=list(self.wanted.objects),
            phone_key=new.phone_key,
            patient=self.wanted.patient,
            patient_label=self.wanted.patient_label,
            studies=sorted(self.wanted.studies),
            created_at=now,
            study_description=self.wanted.study_description,
            series_count=self.wanted.series_count,
            issued_at=[now],
        )
        self.stage = Stage.PREPARING
        return [Save(self.current), Look(self.current)]

    def transfer_seen(self, seen: Seen, holdings: Holdings) -> list[Decision]:
        """The relay described the transfer being sent and what it holds of it."""
        self._expect(Stage.PREPARING)
        record = self._current()
        decisions: list[Decision] = []
        if seen.state == TransferState.CREATED:
            decisions.append(InstallLocks(record))
        self._glass, self._glass_added = seen.break_glass, False
        if self.wanted.break_glass and break_glass_needed(seen):
            decisions.append(AddBreakGlass(record, *self.wanted.break_glass))
            self._glass = self._glass_added = True
        self._look = seen, holdings
        if record.code_confirmed:  # never a code the relay may not have taken (a re-issue's)
            decisions.append(LeavePhoneDocuments(record, self._glass))
        if self._replaced:
            # Last before the new code is shown, so a run that stops earlier leaves them for
            # the next.
            self.stage = Stage.REPLACING
            return decisions + self._give_up(self._replaced)
        return decisions + self._announce()

    def objects_added(self, objects: Iterable[JournalObject]) -> list[Decision]:
        """More images of a followed study arrived (`objects`, their indices ignored): they
        take the next indices, and the journal says so before any of them is sealed (sealing
        is deterministic per index, so an index must never name two files)."""
        self._expect(Stage.UPLOADING)
        self.current = dataclasses.replace(
            self._current(), objects=_grown(self._current().objects, objects)
        )
        return [Save(self.current)]

    def saved(self, record: TransferJournal) -> None:
        """A `Save` wrote `record` as it stands on disk now: with a code re-issued meanwhile (the
        console, or `reissue` in another terminal), which the rest of this push uses too (the
        phone's documents, what is shown)."""
        if self.current is not None and self.current.transfer_id == record.transfer_id:
            self.current = dataclasses.replace(
                self.current,
                code=record.code,
                capability=record.capability,
                issued_at=record.issued_at,
                code_confirmed=record.code_confirmed,
            )

    def upload_finished(self, incomplete: bool = False) -> list[Decision]:
        """The relay holds every object and the closed manifest (`incomplete`: marked so,
        staff having stopped waiting for more images)."""
        self._expect(Stage.UPLOADING)
        self.stage = Stage.FINISHED
        return [Save(dataclasses.replace(self._current(), done=True, incomplete=incomplete))]

    def send_failed(self, error: Exception, seen: Seen | NoAnswer | None) -> list[Decision]:
        """Sending the transfer failed with `error`; the relay then described it as `seen`."""
        self._expect(Stage.PREPARING, Stage.UPLOADING)
        said_no = seen if isinstance(seen, Seen) and seen.by_patient else None
        why = abandon.gone_reason(said_no) if said_no else abandon.failure_reason(error, seen)
        if why is None:
            return [Fail(error)]
        self.stage = Stage.WITHDRAWING
        return self._give_up([_Pending(self._current(), why, _Purpose.FAILED, error, said_no)])

    # -- steps -------------------------------------------------------------------------------

    def _expect(self, *stages: Stage) -> None:
        if self.stage not in stages:
            raise errors.SendingError(f"Internal error: a push cannot go on from {self.stage}.")

    def _current(self) -> TransferJournal:
        if self.current is None:
            raise errors.SendingError("Internal error: no transfer is being sent.")
        return self.current

    def _replace(self, records: Iterable[TransferJournal], reason: str) -> None:
        self._replaced += [_Pending(r, reason, _Purpose.REPLACED) for r in records]

    def _give_up(self, pending: list[_Pending]) -> list[Decision]:
        for p in pending:
            self._pending[p.record.transfer_id] = p
        # A transfer the relay no longer has, or has revoked or let expire, needs no revocation.
        # A locked one is still alive there: revoked, so that a re-issue cannot bring a second
        # code for the patient back to life. One replaced or failed is revoked too, unless the
        # trauma center discarded it: redeemed, it cannot be revoked, and nothing needs it.
        return [
            GiveUp(
                p.record,
                revoke=(p.purpose is not _Purpose.GONE or p.reason == abandon.LOCKED)
                and p.reason != abandon.DISCARDED_THERE,
            )
            for p in pending
        ]

    def _stop(self, error: errors.SendingError) -> list[Decision]:
        self.stage = Stage.STOPPED
        return [Fail(error)]

    def _go_on(self) -> list[Decision]:
        if self.current is None:
            self.stage = Stage.CREATING
            return [Create()]
        old = self.current
        self.current = dataclasses.replace(  # fill in what older journals lack
            old,
            patient=old.patient or self.wanted.patient,
            patient_label=old.patient_label or self.wanted.patient_label,
            studies=old.studies or sorted(self.wanted.studies),
            phone_key=old.phone_key or self.spare_phone_key,
            objects=_grown(old.objects, self.wanted.objects)
            if self.wanted.following
            else old.objects,
        )
        self.stage = Stage.PREPARING
        saved: list[Decision] = [Save(self.current)] if self.current != old else []
        return [*saved, Look(self.current)]

    def _announce(self) -> list[Decision]:
        """Show the code, then send what the relay does not hold yet."""
        record = self._current()
        if self._look is None:
            raise errors.SendingError("Internal error: the relay was not asked about the transfer.")
        seen, holdings = self._look
        count = len(record.objects)
        held = holdings.manifest_closed and all(i in holdings.complete for i in range(count))
        ready = Ready(
            transfer_id=record.transfer_id,
            code=refusals.grouped(record),
            capability=record.capability,
            authorization_url=authorization_link(
                self.wanted.relay, record.authorization_token, record.phone_key
            ),
            expires_at=record.expires_at,
            resumed=self.resumed,
            recipient_display_name=seen.recipient_display_name or self.wanted.recipient,
            sender_display_name=seen.sender_display_name,
            break_glass=self._glass,
            break_glass_added=self._glass_added,
            replaced=tuple(self.given_up),
            uploaded_before=held,
            authorized_by="break_glass" if self._glass else seen.authorized_by,
            study_description=self.wanted.study_description,
            series_count=self.wanted.series_count,
            instance_count=count,
            code_confirmed=record.code_confirmed,
        )
        if not held:
            self.stage = Stage.UPLOADING
            return [Show(ready), Upload(record, holdings, seen.sender, self._glass)]
        self.stage = Stage.FINISHED
        done: list[Decision] = [] if record.done else [Save(dataclasses.replace(record, done=True))]
        return [Show(ready), *done]


def _kept(pending: _Pending, refusal: Exception) -> list[Decision]:
    """A transfer that could not be given up stays as it is: the next run finds it and tries
    again. The run ends with what failed first."""
    if pending.failure is not None:
        return [Fail(pending.failure)]
    if pending.purpose is _Purpose.REPLACED and isinstance(refusal, RelayRefused):
        said = refusals.not_replaced(pending.record, refusal)
        return [Fail(errors.NotReplaced.said(said), refusal)]
    return [Fail(refusal)]


# -- break-glass on a transfer already sent ---------------------------------------------------


def break_glass_needed(seen: Seen) -> bool:
    """Whether break-glass is still to be added. The relay refuses it once the patient or family
    has authorized (then it is not needed), and it is added once."""
    return not seen.break_glass and not seen.consented


def break_glass_steps(
    record: TransferJournal, seen: Seen | None, reason: str, clinician: str
) -> list[Decision]:
    """`trauma-relay break-glass` on a transfer this site sent, which the relay described as
    `seen` (None: it has no record of it): add it, nothing (already added), or a refusal that
    says why."""
    if record.abandoned:
        return [Fail(errors.TransferAbandoned.said(refusals.glass_abandoned(record)))]
    if seen is None:
        gone = refusals.glass_too_late(record, abandon.NO_RECORD)
        return [Fail(errors.BreakGlassTooLate.said(gone))]
    if seen.consented:
        return [Fail(errors.BreakGlassNotNeeded(refusals.glass_not_needed(record, seen)))]
    if seen.break_glass:
        return []
    if seen.state == TransferState.CREATED:
        return [Fail(errors.BreakGlassTooEarly.said(refusals.glass_too_early()))]
    if seen.state not in (TransferState.AWAITING_AUTHORIZATION, TransferState.AUTHORIZED):
        why = abandon.gone_reason(seen) or f"it is {seen.state.replace('_', ' ')}"
        return [Fail(errors.BreakGlassTooLate.said(refusals.glass_too_late(record, why)))]
    return [AddBreakGlass(record, reason, clinician)]


# -- which journals are earlier transfers of the study -----------------------------------------


def _resumable(record: TransferJournal, wanted: Wanted) -> bool:
    """Whether `record` is the transfer of these very files: the same files, or, for a study
    still arriving, an unfinished transfer whose files are all still there, unchanged."""
    if record.fingerprint() == wanted.fingerprint():
        return True
    sent = set(record.fingerprint())
    return wanted.following and not record.done and sent <= set(wanted.fingerprint())


def _grown(sent: list[JournalObject], more: Iterable[JournalObject]) -> list[JournalObject]:
    """`sent` (indices kept), then those of `more` it lacks, numbered on from it."""
    known = {(o.path, o.size, o.mtime_ns) for o in sent}
    added = [o for o in more if (o.path, o.size, o.mtime_ns) not in known]
    return [
        *sent,
        *(JournalObject(len(sent) + n, o.path, o.size, o.mtime_ns) for n, o in enumerate(added)),
    ]


def _same_study(wanted: Wanted, record: TransferJournal) -> bool:
    """Whether `record` is an earlier transfer of the study `wanted` sends, to the same place:
    a study in common and the same patient. A journal from before studies were recorded counts
    only while unfinished and only by its files (the same files, or a path in common and the
    same patient, or a journal too old to say whose it was): a disc of another patient read
    from the same drive is not the same study."""
    if record.abandoned or (record.relay, record.recipient) != (wanted.relay, wanted.recipient):
        return False
    if record.patient not in ("", wanted.patient):
        return False
    if record.studies:
        return not wanted.studies.isdisjoint(record.studies)
    paths = {o.path for o in wanted.objects}
    return not record.done and (
        record.fingerprint() == wanted.fingerprint() or bool(record.paths() & paths)
    )
