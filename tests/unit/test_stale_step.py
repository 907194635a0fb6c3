"""What an import step posted from a page left open is told (`stale_step`), by what the import
became: pure, from the import's fields."""

from __future__ import annotations

from receiving_site.console.errors import ContinuingCannotHelp
from receiving_site.console.imports import Import, Stage
from receiving_site.console.stale_step import Sent, Step, is_stale, notice
from receiving_site.holds import Hold, Kind
from receiving_site.reconcile import Demographics
from receiving_site.redeem import Filing, RedeemResult

AT = 1_796_000_000.0  # 2026-11-30 00:53 UTC
SHOWN = "2026-11-30 00:53 UTC"


def _confirmed(stage: Stage) -> Import:
    job = Import(slot="T", started_by="registrar.kim", transfer_id="T", stage=stage)
    job.filing = Filing("MRN-555", new_local_patient=True, local_issuer="COUNTY")
    job.decided_by, job.decided_at = "registrar.kim", AT
    return job


def test_another_record_confirmed_while_importing_says_who_when_which_and_what_to_do() -> None:
    told = notice(_confirmed(Stage.IMPORTING), Step.CONFIRM, Sent("MRN-556"))
    assert told.heading == "Your choice was not used"
    assert not told.agrees
    assert told.sentences == (
        "Your choice (record MRN-556) was not used: nothing was changed by this click.",
        f"This import was already confirmed: registrar.kim confirmed it on {SHOWN} under "
        "record MRN-555 (issuer COUNTY). It is being imported into the PACS now.",
        "If MRN-555 is not this patient's record, call the PACS administrators now to move "
        "these images to the right record, and tell radiology: nothing on this page changes "
        "where they are filed.",
    )


def test_the_same_record_is_told_briefly_but_not_from_another_issuer_on_the_worklist() -> None:
    job = _confirmed(Stage.IMPORTING)
    same = notice(job, Step.RECORD_CHECK, Sent("MRN-555"))
    assert same.agrees
    assert same.heading == "Already confirmed"
    assert same.sentences == (
        f"registrar.kim already confirmed this import on {SHOWN} under record MRN-555 (issuer "
        "COUNTY), the record you chose. Nothing was changed by your click, and there is "
        "nothing more to do.",
    )
    picked = Sent("MRN-555", "OTHER-HOSPITAL", from_worklist=True)
    other = notice(job, Step.RECORD_CHECK, picked)
    assert not other.agrees
    assert other.sentences[0] == (
        "Your choice (record MRN-555 (issuer OTHER-HOSPITAL), picked from the worklist) was "
        "not used: nothing was changed by this click."
    )


def test_a_study_stored_from_the_holds_queue_names_who_stored_it_and_the_record() -> None:
    job = Import(slot="T", started_by="registrar.kim", transfer_id="T", stage=Stage.DONE)
    filed = Demographics("MRN-901", "COUNTY", "DOE^JANE", "19850214")
    job.result = RedeemResult("T", 3, 100, "pacs", False, filed_under=filed)
    job.resolved_by = "dr.ray"
    told = notice(job, Step.CONFIRM, Sent("MRN-556"))
    assert told.sentences[1:] == (
        "This study was held for review, and dr.ray stored it in the PACS from the holds "
        "queue under record MRN-901 (issuer COUNTY): 3 images.",
        "If MRN-901 is not this patient's record, call the PACS administrators now to move "
        "these images to the right record, and tell radiology: nothing on this page changes "
        "where they are filed.",
    )


def test_held_discarded_and_stopped_imports_say_so_and_where_to_go_on() -> None:
    held = Import(slot="T", started_by="a", transfer_id="T", stage=Stage.HELD)
    held.hold = Hold(Kind.STUDY, "The PACS holds this study under another patient")
    assert notice(held, Step.CONFIRM, Sent("MRN-556")).sentences[1:] == (
        "The PACS holds this study under another patient; this import was held for review, "
        "and nothing more happens to it until a person decides in the holds queue.",
        "Decide what happens to it in the holds queue (Holds, above).",
    )
    discarded = Import(slot="T", started_by="a", transfer_id="T", stage=Stage.DISCARDED)
    discarded.resolved_by, discarded.sender = "dr.ray", "St. Mary's ED"
    assert notice(discarded, Step.CONTINUE, Sent()).sentences == (
        "Your click was not used: nothing was changed by it.",
        "This study was held for review, and dr.ray discarded it from this machine in the "
        "holds queue.",
        "If it is needed, ask St. Mary's ED to send it again with a new code.",
    )
    stopped = Import(slot="T", started_by="a", transfer_id="T", stage=Stage.FAILED)
    stopped.problem, stopped.continuable = "The study will never be whole.", False
    assert notice(stopped, Step.CONTINUE, Sent()).sentences[1:] == (
        "This import stopped. The study will never be whole.",
        ContinuingCannotHelp().detail,
    )


def test_which_steps_are_stale_in_which_stage() -> None:
    importing = _confirmed(Stage.IMPORTING)
    assert is_stale(importing, Step.CONFIRM)
    assert is_stale(importing, Step.RECORD_CHECK)
    assert is_stale(importing, Step.CONTINUE)  # nothing to continue: it is not stopped
    held = Import(slot="T", started_by="a", transfer_id="T", stage=Stage.HELD)
    assert not is_stale(held, Step.CONTINUE)  # Check again, from the preview
    stopped = Import(slot="T", started_by="a", transfer_id="T", stage=Stage.FAILED)
    assert not is_stale(stopped, Step.CONTINUE)
    stopped.continuable = False
    assert is_stale(stopped, Step.CONTINUE)
    assert is_stale(Import(slot="T", started_by="a", stage=Stage.UNFINISHED), Step.CONTINUE)
