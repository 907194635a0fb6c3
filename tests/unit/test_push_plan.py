"""The push plan (`sending_site.plan.PushPlan`) without I/O: each scenario feeds it what the relay
and the files would say and asserts the exact list of decisions, in order; then a check that
docs/sending.md draws exactly the stage changes those scenarios make."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import state_drawing

from sending_site import abandon, decisions, errors
from sending_site.abandon import NoAnswer, Seen
from sending_site.journal import JournalObject, TransferJournal
from sending_site.plan import FINAL_STAGES, PushPlan, Stage, break_glass_steps
from site_agent.client import Holdings
from site_agent.errors import RelayRefused, RelayUnreachable
from transfer_codes.codes import RedemptionCode

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
RELAY = "https://relay.example"
TO = "county-trauma"
PATIENT = "p" * 64
STUDY = "s" * 64
FILES = (JournalObject(0, "/cd/IM1", 100, 1), JournalObject(1, "/cd/IM2", 200, 1))
CHANGED = (JournalObject(0, "/cd/IM1", 100, 1), JournalObject(1, "/cd/IM2", 200, 2))
SPARE_PHONE_KEY = "k" * 43
CODE = RedemptionCode.generate(7).compact()  # every earlier transfer's here
DOC = Path(__file__).resolve().parents[2] / "docs" / "sending.md"


def wanted(**changes: Any) -> decisions.Wanted:
    base = decisions.Wanted(RELAY, TO, PATIENT, frozenset({STUDY}), FILES)
    return dataclasses.replace(base, **changes)


def journal(transfer_id: str, **changes: Any) -> TransferJournal:
    """An earlier transfer of the same study and files, newer the larger its id's last digit."""
    record = TransferJournal(
        transfer_id=transfer_id,
        relay=RELAY,
        recipient=TO,
        data_key=b"d" * 32,
        locator=7,
        code=CODE,
        capability="capability",
        authorization_token="token",
        expires_at=T0 + 72 * 3600,
        objects=list(FILES),
        phone_key="f" * 43,
        patient=PATIENT,
        studies=[STUDY],
        created_at=T0 - 3600 + int(transfer_id[-1]),
    )
    return dataclasses.replace(record, **changes)


def seen(state: str, **changes: Any) -> Seen:
    base = Seen(state, sender="st-mary-er", recipient_display_name="County Trauma")
    return dataclasses.replace(base, **changes)


def holdings(complete: tuple[int, ...] = (), *, closed: bool = False) -> Holdings:
    return Holdings({i: 10 for i in complete}, set(complete), len(complete) + 1, closed)


NEW = decisions.NewTransfer("new", 9, T0 + 72 * 3600, b"n" * 32, "0" * 16, "cap", "tok", "p" * 43)
ALL_HELD = holdings((0, 1), closed=True)


def refused(code: str, status: int = 409) -> RelayRefused:
    return RelayRefused(status, code, f"The relay refused ({code}).", {})


def said(steps: list[decisions.Decision]) -> list[tuple[object, ...]]:
    """The decisions as `(what, arguments)`, comparable in one assert."""
    out: list[tuple[object, ...]] = []
    for d in steps:
        match d:
            case decisions.Save(record):
                out.append(("save", record.transfer_id, record.done, record.abandoned))
            case decisions.GiveUp(record, revoke):
                out.append(("give_up", record.transfer_id, revoke))
            case decisions.Create():
                out.append(("create",))
            case decisions.Look(record):
                out.append(("look", record.transfer_id))
            case decisions.InstallLocks(record):
                out.append(("install_locks", record.transfer_id))
            case decisions.AddBreakGlass(record, reason, clinician):
                out.append(("break_glass", record.transfer_id, reason, clinician))
            case decisions.LeavePhoneDocuments(record, glass):
                out.append(("phone", record.transfer_id, glass))
            case decisions.Show(ready):
                gone = tuple(r.transfer_id for r in ready.replaced)
                out.append(("show", ready.transfer_id, ready.resumed, ready.uploaded_before, gone))
            case decisions.Upload(record, _, sender, glass):
                out.append(("upload", record.transfer_id, sender, glass))
            case decisions.Fail(error, _):
                out.append(("fail", type(error).__name__))
    return out


class Drive:
    """Feeds a plan its events, as `push` would, and keeps every stage change it makes."""

    def __init__(self, plan: PushPlan) -> None:
        self.plan = plan
        self.moves: set[tuple[str, str, str]] = set()
        self.last: list[decisions.Decision] = []

    def __call__(self, event: str, *args: object) -> list[tuple[object, ...]]:
        before = self.plan.stage
        self.last = getattr(self.plan, event)(*args)
        if self.plan.stage != before:
            self.moves.add((before.value, self.plan.stage.value, event))
        return said(self.last)

    def error(self) -> Exception:
        (fail,) = [d for d in self.last if isinstance(d, decisions.Fail)]
        return fail.error

    def saved(self) -> TransferJournal:
        (save,) = [d for d in self.last if isinstance(d, decisions.Save)]
        return save.record


def drive(*journals: TransferJournal, **changes: Any) -> Drive:
    return Drive(PushPlan(wanted(**changes), journals, SPARE_PHONE_KEY))


Scenario = Callable[[], Drive]
SCENARIOS: list[Scenario] = []


def scenario(f: Scenario) -> Scenario:
    SCENARIOS.append(f)
    return f


# -- the patient or family said no on their phone ----------------------------------------------


@scenario
def a_declined_transfer_stops_the_next_push() -> Drive:
    no = seen("revoked", revoked_by="family", declined=True, revoked_at=T0)
    d = drive(journal("old1"))
    assert d("statuses_received", {"old1": no}) == [("give_up", "old1", False)]
    reason = "the patient's family declined to share it on their phone"
    assert d("revoke_answered", "old1", None) == [
        ("save", "old1", True, reason),
        ("fail", "TransferDeclined"),
    ]
    assert "declined on their phone" in str(d.error())
    assert d.plan.stage == Stage.STOPPED
    return d


def test_after_a_decline_the_push_after_starts_a_new_transfer() -> None:
    declined = journal("old1", done=True, abandoned="the patient declined to share it")
    assert drive(declined)("statuses_received", {}) == [("create",)]


@scenario
def a_decline_while_uploading_withdraws_with_the_familys_words() -> Drive:
    d = drive()
    d("statuses_received", {})
    d("transfer_created", T0, NEW)
    d("transfer_seen", seen("awaiting_authorization"), holdings())
    no = seen("revoked", revoked_by="patient", declined=False, revoked_at=T0)
    assert d("send_failed", refused("revoked", 410), no) == [("give_up", "new", True)]
    assert d("revoke_answered", "new", refused("revoked", 410)) == [
        ("save", "new", True, "the patient cancelled it on their phone"),
        ("fail", "TransferDeclined"),
    ]
    assert d.plan.stage == Stage.WITHDRAWN
    return d


# -- a first push, and a push that resumes -----------------------------------------------------


@scenario
def first_push() -> Drive:
    d = drive()
    assert d("statuses_received", {}) == [("create",)]
    assert d("transfer_created", T0, NEW) == [("save", "new", False, ""), ("look", "new")]
    assert d.saved().created_at == T0
    assert d.saved().studies == [STUDY]
    assert d("transfer_seen", seen("created"), holdings()) == [
        ("install_locks", "new"),
        ("phone", "new", False),
        ("show", "new", False, False, ()),
        ("upload", "new", "st-mary-er", False),
    ]
    assert d("upload_finished") == [("save", "new", True, "")]
    assert d.plan.stage == Stage.FINISHED
    return d


@scenario
def an_interrupted_upload_resumes() -> Drive:
    d = drive(journal("old1"))
    assert d.plan.candidates == [journal("old1")]
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [("look", "old1")]
    assert d("transfer_seen", seen("awaiting_authorization"), holdings((0,))) == [
        ("phone", "old1", False),
        ("show", "old1", True, False, ()),
        ("upload", "old1", "st-mary-er", False),
    ]
    return d


@scenario
def the_same_files_again_once_sent_upload_nothing() -> Drive:
    d = drive(journal("old1", done=True))
    assert d("statuses_received", {"old1": seen("authorized")}) == [("look", "old1")]
    assert d("transfer_seen", seen("authorized"), ALL_HELD) == [
        ("phone", "old1", False),
        ("show", "old1", True, True, ()),
    ]
    assert d.plan.stage == Stage.FINISHED
    return d


@scenario
def a_journal_not_marked_done_although_all_is_held_is_marked_now() -> Drive:
    d = drive(journal("old1"))
    d("statuses_received", {"old1": seen("redeemed")})
    assert d("transfer_seen", seen("redeemed"), ALL_HELD) == [
        ("phone", "old1", False),
        ("show", "old1", True, True, ()),
        ("save", "old1", True, ""),
    ]
    return d


@scenario
def a_journal_from_before_studies_were_recorded_resumes_and_is_filled_in() -> Drive:
    old = journal("old1", patient="", studies=[], phone_key="")
    d = drive(old)
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [
        ("save", "old1", False, ""),
        ("look", "old1"),
    ]
    filled = d.saved()
    assert (filled.patient, filled.studies, filled.phone_key) == (
        PATIENT,
        [STUDY],
        SPARE_PHONE_KEY,
    )
    return d


# -- a delivered study, and one already on its way from other files ----------------------------


@scenario
def a_delivered_study_stops_the_push() -> Drive:
    receipt = {"instances": 12, "destination": "pacs", "complete": True}
    delivered = seen("delivered", delivered_at=T0, receipt=receipt)
    d = drive(journal("old1", done=True), journal("gone2"))
    assert d("statuses_received", {"old1": delivered, "gone2": seen("revoked")}) == [
        ("fail", "AlreadyDelivered")
    ]
    assert str(d.error()) == (
        "This study was already delivered to County Trauma on 2027-01-15 08:00 UTC (transfer "
        "old1: 12 images stored in their PACS). Nothing was sent. If they ask for it again, run "
        "the same command with --replace."
    )
    error = d.error()
    assert isinstance(error, errors.SendingError)
    assert error.for_console == (  # the ER console's job page has the button
        "This study was already delivered to County Trauma on 2027-01-15 08:00 UTC (transfer "
        "old1: 12 images stored in their PACS). Nothing was sent. If they ask for it again, send "
        "it as a new transfer (the button below): it has a new code, which the patient or family "
        "authorize on their phone."
    )
    assert d.plan.stage == Stage.STOPPED  # and nothing given up, created or saved
    return d


@scenario
def replace_sends_a_delivered_study_again() -> Drive:
    d = drive(journal("old1", done=True), replace=True)
    assert d("statuses_received", {"old1": seen("delivered")}) == [("create",)]
    d("transfer_created", T0, NEW)
    assert d("transfer_seen", seen("created"), holdings()) == [
        ("install_locks", "new"),
        ("phone", "new", False),
        ("give_up", "old1", True),
    ]
    reason = abandon.REPLACED_AS_ASKED + abandon.ALREADY_REDEEMED
    assert d("revoke_answered", "old1", refused("already-redeemed")) == [
        ("save", "old1", True, reason),
        ("show", "new", False, False, ("old1",)),
        ("upload", "new", "st-mary-er", False),
    ]
    return d


@scenario
def a_finished_transfer_from_other_files_stops_the_push() -> Drive:
    old = journal("old1", done=True, objects=list(CHANGED))
    d = drive(old)
    assert d("statuses_received", {"old1": seen("authorized")}) == [("fail", "AlreadySent")]
    message = str(d.error())
    assert f"its code {RedemptionCode.parse(old.code).grouped()} still works" in message
    assert message.endswith("run the same command with --replace.")
    error = d.error()
    assert isinstance(error, errors.SendingError)
    assert (
        RedemptionCode.parse(old.code).grouped() not in error.for_console
    )  # the job file keeps it
    assert "its code (on its transfer sheet) still works" in error.for_console
    assert error.for_console.endswith(
        "to send these images instead and stop that code, send them as a new transfer (the "
        "button below)."
    )
    return d


@scenario
def replace_revokes_a_live_transfer() -> Drive:
    d = drive(journal("old1", done=True), replace=True)
    assert d("statuses_received", {"old1": seen("authorized")}) == [("create",)]
    d("transfer_created", T0, NEW)
    assert d("transfer_seen", seen("created"), holdings())[-1] == ("give_up", "old1", True)
    assert d("revoke_answered", "old1", None) == [
        ("save", "old1", True, abandon.REPLACED_AS_ASKED),
        ("show", "new", False, False, ("old1",)),
        ("upload", "new", "st-mary-er", False),
    ]
    return d


@scenario
def changed_files_replace_an_unfinished_transfer() -> Drive:
    d = drive(journal("old1", objects=list(CHANGED)))
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [("create",)]
    d("transfer_created", T0, NEW)
    assert d("transfer_seen", seen("created"), holdings()) == [
        ("install_locks", "new"),
        ("phone", "new", False),
        ("give_up", "old1", True),
    ]
    assert d("revoke_answered", "old1", None)[0] == ("save", "old1", True, abandon.REPLACED)
    return d


@scenario
def a_transfer_closed_incomplete_is_replaced_when_the_study_is_sent_again() -> Drive:
    """Staff stopped waiting for more images: its manifest was closed marked incomplete and
    the trauma center stores none of it. Sent again, the study goes as a new transfer, without
    --replace; the incomplete one is revoked."""
    closed = journal("old1", objects=list(CHANGED), done=True, incomplete=True)
    d = drive(closed, following=True)
    assert d("statuses_received", {"old1": seen("authorized")}) == [("create",)]
    d("transfer_created", T0, NEW)
    assert d("transfer_seen", seen("created"), holdings()) == [
        ("install_locks", "new"),
        ("phone", "new", False),
        ("give_up", "old1", True),
    ]
    reason = abandon.SENT_INCOMPLETE + abandon.ALREADY_REDEEMED  # they had tried it
    assert d("revoke_answered", "old1", refused("already-redeemed")) == [
        ("save", "old1", True, reason),
        ("show", "new", False, False, ("old1",)),
        ("upload", "new", "st-mary-er", False),
    ]
    assert d("upload_finished", True) == [("save", "new", True, "")]
    assert d.saved().incomplete  # stopped again before the study was complete
    return d


@scenario
def a_transfer_closed_incomplete_is_replaced_even_when_nothing_more_arrived() -> Drive:
    """Sent again before any other image came: the incomplete transfer is not resumed (it is
    over, and would follow nothing); a new one follows the study."""
    d = drive(journal("old1", done=True, incomplete=True), following=True)
    assert d("statuses_received", {"old1": seen("authorized")}) == [("create",)]
    d("transfer_created", T0, NEW)
    assert ("give_up", "old1", True) in d("transfer_seen", seen("created"), holdings())
    return d


@scenario
def a_resumed_transfer_replaces_an_unfinished_one_then_finishes() -> Drive:
    d = drive(journal("old1", done=True), journal("old2", objects=list(CHANGED)))
    answers = {"old1": seen("authorized"), "old2": seen("awaiting_authorization")}
    assert d("statuses_received", answers) == [("look", "old1")]
    assert d("transfer_seen", seen("authorized"), ALL_HELD) == [
        ("phone", "old1", False),
        ("give_up", "old2", True),
    ]
    assert d("revoke_answered", "old2", None) == [
        ("save", "old2", True, abandon.REPLACED),
        ("show", "old1", True, True, ("old2",)),
    ]
    assert d.plan.stage == Stage.FINISHED
    return d


# -- transfers the relay can no longer finish -------------------------------------------------


@scenario
def gone_transfers_are_given_up_before_a_new_one() -> Drive:
    d = drive(journal("rev1"), journal("exp2"), journal("unk3"), journal("lck4"))
    answers = {
        "rev1": seen("revoked"),
        "exp2": seen("expired"),
        "unk3": None,
        "lck4": seen("locked"),
    }
    assert d("statuses_received", answers) == [  # newest first; only the locked one revoked
        ("give_up", "lck4", True),
        ("give_up", "unk3", False),
        ("give_up", "exp2", False),
        ("give_up", "rev1", False),
    ]
    assert d("revoke_answered", "lck4", None) == [("save", "lck4", True, abandon.LOCKED)]
    assert d("revoke_answered", "unk3", None) == [("save", "unk3", True, abandon.NO_RECORD)]
    assert d("revoke_answered", "exp2", None) == [("save", "exp2", True, "it expired")]
    assert d("revoke_answered", "rev1", None) == [
        ("save", "rev1", True, "it was revoked"),
        ("create",),
    ]
    d("transfer_created", T0, NEW)
    shown = d("transfer_seen", seen("created"), holdings())
    assert ("show", "new", False, False, ("lck4", "unk3", "exp2", "rev1")) in shown
    return d


@scenario
def a_gone_transfer_is_given_up_and_a_live_one_resumed() -> Drive:
    d = drive(journal("old1"), journal("rev2"))
    answers = {"old1": seen("authorized"), "rev2": seen("revoked")}
    assert d("statuses_received", answers) == [("give_up", "rev2", False)]
    assert d("revoke_answered", "rev2", None) == [
        ("save", "rev2", True, "it was revoked"),
        ("look", "old1"),
    ]
    return d


@scenario
def a_locked_transfer_that_cannot_be_revoked_now_is_kept() -> Drive:
    d = drive(journal("lck1"))
    d("statuses_received", {"lck1": seen("locked")})
    lost = RelayUnreachable("The relay could not be reached.")
    assert d("revoke_answered", "lck1", lost) == [("fail", "RelayUnreachable")]
    assert d.error() is lost  # nothing saved: the next run tries again
    return d


@scenario
def a_replaced_transfer_the_relay_will_not_revoke_stops_the_run() -> Drive:
    d = drive(journal("old1", objects=list(CHANGED)))
    d("statuses_received", {"old1": seen("authorized")})
    d("transfer_created", T0, NEW)
    d("transfer_seen", seen("created"), holdings())
    assert d("revoke_answered", "old1", refused("not-permitted", 403)) == [("fail", "NotReplaced")]
    error = d.error()
    assert isinstance(error, errors.SendingError)
    assert "which this one replaces, could not be withdrawn" in str(error)
    assert str(error).endswith("Run the same command again.")
    assert error.for_console.endswith("Try again with the button below.")
    return d


# -- what each refusal means while sending -----------------------------------------------------


def uploading() -> Drive:
    d = drive()
    d("statuses_received", {})
    d("transfer_created", T0, NEW)
    d("transfer_seen", seen("awaiting_authorization"), holdings())
    return d


@scenario
def a_request_refused_for_good_withdraws_the_transfer() -> Drive:
    d = uploading()
    too_large = refused("too-large", 413)
    assert d("send_failed", too_large, seen("awaiting_authorization")) == [("give_up", "new", True)]
    assert d("revoke_answered", "new", None) == [
        ("save", "new", True, "the relay refused part of it"),
        ("fail", "TransferWithdrawn"),
    ]
    assert f"its code {RedemptionCode.parse(NEW.code).grouped()} no longer works" in str(d.error())
    assert d.last[-1] == decisions.Fail(d.error(), too_large)
    return d


@scenario
def a_transfer_the_trauma_center_redeemed_cannot_be_withdrawn() -> Drive:
    d = uploading()
    d("send_failed", errors.FileChanged(), seen("redeemed"))
    assert d("revoke_answered", "new", refused("already-redeemed")) == [
        (
            "save",
            "new",
            True,
            "its files changed while they were being sent; the trauma center "
            "had already redeemed it",
        ),
        ("fail", "TransferWithdrawn"),
    ]
    assert "has already redeemed its code: call them" in str(d.error())
    return d


@scenario
def a_conflict_withdraws_only_a_transfer_the_relay_gave_up() -> Drive:
    d = drive()
    d("statuses_received", {})
    d("transfer_created", T0, NEW)
    conflict = refused("invalid-state")
    assert d("send_failed", conflict, NoAnswer()) == [("fail", "RelayRefused")]
    assert d("send_failed", conflict, seen("locked")) == [("fail", "RelayRefused")]
    assert d("send_failed", conflict, seen("revoked")) == [("give_up", "new", True)]
    assert d("revoke_answered", "new", refused("revoked")) == [
        ("save", "new", True, "it was revoked"),
        ("fail", "TransferWithdrawn"),
    ]
    return d


DISCARDED = {"instances": 0, "bytes": 0, "destination": "discarded", "received_at": T0}


@scenario
def a_study_the_trauma_center_discarded_goes_again_as_a_new_transfer() -> Drive:
    """Even of the same files: the discarded transfer's code is spent and nothing more of it
    is imported. It is given up without a revocation (redeemed, it cannot be revoked)."""
    d = drive(journal("old1", done=True))
    discarded = seen("redeemed", receipt=DISCARDED)
    assert d("statuses_received", {"old1": discarded}) == [("give_up", "old1", False)]
    assert d("revoke_answered", "old1", None) == [
        ("save", "old1", True, abandon.DISCARDED_THERE),
        ("create",),
    ]
    return d


@scenario
def an_upload_refused_after_a_discard_gives_up_without_a_revocation() -> Drive:
    d = uploading()
    conflict = refused("invalid-state")
    discarded = seen("redeemed", receipt=DISCARDED)
    assert d("send_failed", conflict, discarded) == [("give_up", "new", False)]
    assert d("revoke_answered", "new", None) == [
        ("save", "new", True, abandon.DISCARDED_THERE),
        ("fail", "TransferWithdrawn"),
    ]
    return d


@scenario
def a_withdrawal_the_relay_cannot_take_now_ends_with_the_first_error() -> Drive:
    d = uploading()
    gone = refused("not-found", 404)
    d("send_failed", gone, None)
    assert d("revoke_answered", "new", RelayUnreachable("lost")) == [("fail", "RelayRefused")]
    assert d.error() is gone
    return d


# -- break-glass -------------------------------------------------------------------------------

GLASS = ("Unconscious after a fall, no family reachable.", "Dr. A. Example")


@scenario
def break_glass_is_added_to_a_resumed_transfer() -> Drive:
    d = drive(journal("old1", done=True), break_glass=GLASS)
    d("statuses_received", {"old1": seen("awaiting_authorization")})
    assert d("transfer_seen", seen("awaiting_authorization"), ALL_HELD) == [
        ("break_glass", "old1", *GLASS),
        ("phone", "old1", True),
        ("show", "old1", True, True, ()),
    ]
    assert _glass_shown(d) == (True, True)
    return d


@scenario
def break_glass_added_before_is_not_added_again() -> Drive:
    d = drive(journal("old1", done=True), break_glass=GLASS)
    glass = seen("authorized", authorized_by="break_glass", break_glass=True)
    d("statuses_received", {"old1": glass})
    assert d("transfer_seen", glass, ALL_HELD) == [
        ("phone", "old1", True),
        ("show", "old1", True, True, ()),
    ]
    assert _glass_shown(d) == (True, False)  # the audit log's `already`
    return d


@scenario
def break_glass_after_the_family_authorized_is_not_added() -> Drive:
    d = drive(journal("old1"), break_glass=GLASS)
    d("statuses_received", {"old1": seen("authorized", authorized_by="family")})
    assert d("transfer_seen", seen("authorized", authorized_by="family"), holdings()) == [
        ("phone", "old1", False),
        ("show", "old1", True, False, ()),
        ("upload", "old1", "st-mary-er", False),
    ]
    assert _glass_shown(d) == (False, False)
    return d


def _glass_shown(d: Drive) -> tuple[bool, bool]:
    """What the code shown says of break-glass: in effect, and added by this run."""
    (ready,) = [step.ready for step in d.last if isinstance(step, decisions.Show)]
    return ready.break_glass, ready.break_glass_added


@pytest.mark.parametrize("run", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(run: Scenario) -> None:
    run()


@pytest.mark.parametrize(
    ("state", "authorized_by", "had", "expected"),
    [
        ("awaiting_authorization", None, False, "add"),
        ("authorized", "break_glass", True, "nothing"),
        ("authorized", "family", False, "BreakGlassNotNeeded"),
        ("redeemed", "patient", False, "BreakGlassNotNeeded"),
        ("created", None, False, "BreakGlassTooEarly"),
        ("revoked", None, False, "BreakGlassTooLate"),
        ("locked", None, False, "BreakGlassTooLate"),
    ],
)
def test_break_glass_on_a_transfer_already_sent(
    state: str, authorized_by: str | None, had: bool, expected: str
) -> None:
    record = journal("old1", done=True)
    view = seen(state, authorized_by=authorized_by, break_glass=had)
    steps = break_glass_steps(record, view, *GLASS)
    described = said(steps)
    assert described == {
        "add": [("break_glass", "old1", *GLASS)],
        "nothing": [],
    }.get(expected, [("fail", expected)])


def test_break_glass_messages_say_why_and_what_to_do() -> None:
    record = journal("old1", done=True)
    (not_needed,) = break_glass_steps(record, seen("authorized", authorized_by="family"), *GLASS)
    assert isinstance(not_needed, decisions.Fail)
    assert str(not_needed.error) == (
        "The family already authorized transfer old1, so break-glass is not needed: the trauma "
        "center can redeem its code as it is."
    )
    (late,) = break_glass_steps(record, None, *GLASS)
    assert isinstance(late, decisions.Fail)
    assert "the relay has no record of it" in str(late.error)
    assert str(late.error).endswith("send the study again with trauma-relay push --break-glass.")
    # In the console (a page left open while the family declined, or the code locked): its
    # page, not the command line.
    for state in ("revoked", "locked"):
        (gone,) = break_glass_steps(record, seen(state), *GLASS)
        assert isinstance(gone, decisions.Fail)
        assert isinstance(gone.error, errors.BreakGlassTooLate)
        assert "trauma-relay" not in gone.error.for_console
        assert gone.error.for_console.endswith(
            "send the study again from its page, then authorize the new transfer by break-glass."
        )
    given_up = dataclasses.replace(record, abandoned="it expired")
    (abandoned,) = break_glass_steps(given_up, seen("expired"), *GLASS)
    assert isinstance(abandoned, decisions.Fail)
    assert isinstance(abandoned.error, errors.TransferAbandoned)
    assert str(abandoned.error).endswith("trauma-relay push --break-glass.")
    assert abandoned.error.for_console.endswith(
        "Send the study again from its page, then authorize the new transfer by break-glass."
    )
    (early,) = break_glass_steps(record, seen("created"), *GLASS)
    assert isinstance(early, decisions.Fail)
    assert isinstance(early.error, errors.BreakGlassTooEarly)
    assert str(early.error).endswith("Run the same push command again with --break-glass.")
    assert early.error.for_console.endswith(
        "Once its page shows the code, authorize it by break-glass there."
    )


# -- which journals are the same study ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "candidate"),
    [
        ({}, True),
        ({"studies": [STUDY, "other" * 8]}, True),  # a study in common
        ({"studies": ["other" * 8]}, False),
        ({"patient": "q" * 64}, False),  # another patient's disc in the same drive
        ({"recipient": "other-center"}, False),
        ({"relay": "https://other.example"}, False),
        ({"abandoned": "it expired", "done": True}, False),
        ({"studies": [], "patient": ""}, True),  # older journal, same files, unfinished
        ({"studies": [], "objects": [JournalObject(0, "/cd/IM1", 9, 9)]}, True),  # a path
        ({"studies": [], "objects": [JournalObject(0, "/usb/IM1", 9, 9)]}, False),
        ({"studies": [], "done": True}, False),  # older and finished: not told apart
    ],
)
def test_which_journals_are_earlier_transfers_of_the_study(
    changes: dict[str, Any], candidate: bool
) -> None:
    record = journal("old1", **changes)
    assert (PushPlan(wanted(), [record], SPARE_PHONE_KEY).candidates == [record]) is candidate


def test_an_event_out_of_turn_is_refused() -> None:
    plan = PushPlan(wanted(), [], SPARE_PHONE_KEY)
    with pytest.raises(errors.SendingError, match="cannot go on from choosing"):
        plan.upload_finished()


# -- the drawing ------------------------------------------------------------------------------


def code_moves() -> set[tuple[str, str, str]]:
    moves: set[tuple[str, str, str]] = set()
    for run in SCENARIOS:
        moves |= run().moves
    return moves


def test_every_drawn_arrow_is_a_move_the_plan_makes() -> None:
    drawn, _, _ = state_drawing.drawn_transitions(DOC)
    assert drawn - code_moves() == set()


def test_every_move_the_plan_makes_is_drawn() -> None:
    drawn, _, _ = state_drawing.drawn_transitions(DOC)
    assert code_moves() - drawn == set()


def test_drawn_start_and_end_stages_match_the_code() -> None:
    drawn, starts, ends = state_drawing.drawn_transitions(DOC)
    assert starts == {PushPlan(wanted(), [], SPARE_PHONE_KEY).stage.value}
    assert ends == {s.value for s in FINAL_STAGES}
    assert {s for move in drawn for s in move[:2]} == {s.value for s in Stage}


# -- a study still arriving (cut-through from the inbox) ---------------------------------------

ARRIVED = JournalObject(0, "/spool/IM3", 300, 1)  # its index is the plan's to give


def test_a_followed_push_resumes_its_transfer_and_journals_what_arrived_since() -> None:
    d = drive(journal("old1"), following=True, objects=(*FILES, ARRIVED))
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [
        ("save", "old1", False, ""),
        ("look", "old1"),
    ]
    assert [(o.index, o.path) for o in d.saved().objects] == [
        (0, "/cd/IM1"),
        (1, "/cd/IM2"),
        (2, "/spool/IM3"),
    ]
    assert d("transfer_seen", seen("awaiting_authorization"), holdings((0,))) == [
        ("phone", "old1", False),
        ("show", "old1", True, False, ()),
        ("upload", "old1", "st-mary-er", False),
    ]


def test_images_arriving_during_the_upload_take_the_next_indices_journaled_first() -> None:
    d = drive(following=True)
    d("statuses_received", {})
    d("transfer_created", T0, NEW)
    d("transfer_seen", seen("created"), holdings())
    assert d("objects_added", [ARRIVED]) == [("save", "new", False, "")]
    assert [(o.index, o.path) for o in d.saved().objects] == [
        (0, "/cd/IM1"),
        (1, "/cd/IM2"),
        (2, "/spool/IM3"),
    ]
    assert d("upload_finished") == [("save", "new", True, "")]


def test_a_followed_transfer_whose_file_changed_is_not_resumed() -> None:
    d = drive(journal("old1"), following=True, objects=(*CHANGED, ARRIVED))
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [("create",)]


def test_only_a_followed_push_resumes_a_transfer_of_fewer_files() -> None:
    d = drive(journal("old1"), objects=(*FILES, ARRIVED))
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [("create",)]


def test_a_code_re_issued_while_the_push_runs_is_the_one_it_shows_and_seals() -> None:
    """The console re-issued the code between the push reading its journals and showing the
    code: the journal saved (`PushPlan.saved`) holds the new one, and the push uses it."""
    d = drive(journal("old1", done=True))
    assert d("statuses_received", {"old1": seen("authorized")}) == [("look", "old1")]
    fresh = RedemptionCode.generate(7)
    d.plan.saved(journal("old1", code=fresh.compact(), capability="new capability"))
    steps = d.plan.transfer_seen(seen("authorized"), ALL_HELD)
    (phone,) = [s for s in steps if isinstance(s, decisions.LeavePhoneDocuments)]
    (show,) = [s for s in steps if isinstance(s, decisions.Show)]
    assert phone.record.code == fresh.compact()
    assert (show.ready.code, show.ready.capability) == (fresh.grouped(), "new capability")
    d.plan.saved(journal("other2", code=CODE))  # another transfer's journal changes nothing
    assert d.plan.current is not None
    assert d.plan.current.code == fresh.compact()


def test_a_code_whose_re_issue_had_no_answer_is_neither_shown_nor_left_for_the_phone() -> None:
    """A re-issue reached the relay and its answer was lost (`code_confirmed` false): the relay
    may not hold that code. A push resuming the transfer leaves the phone's documents as they
    are and shows the code as not confirmed (the command line then neither prints it nor
    writes its sheet); a push running meanwhile adopts that too."""
    d = drive(journal("old1", code_confirmed=False))
    assert d("statuses_received", {"old1": seen("awaiting_authorization")}) == [("look", "old1")]
    assert d("transfer_seen", seen("awaiting_authorization"), holdings((0,))) == [
        ("show", "old1", True, False, ()),
        ("upload", "old1", "st-mary-er", False),
    ]
    (show,) = [s for s in d.last if isinstance(s, decisions.Show)]
    assert not show.ready.code_confirmed

    running = drive(journal("old1"))
    running("statuses_received", {"old1": seen("awaiting_authorization")})
    running.plan.saved(
        journal("old1", code=RedemptionCode.generate(7).compact(), code_confirmed=False)
    )
    assert running.plan.current is not None
    assert not running.plan.current.code_confirmed
