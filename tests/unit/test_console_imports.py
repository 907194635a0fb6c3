"""The trauma console's imports (`receiving_site.console.imports.Imports`) without a relay: the
redemption is a stand-in that unlocks a transfer and stops, as a held study does."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from held_studies import held_study

from receiving_site import errors, state
from receiving_site.console import imports as imports_module
from receiving_site.console.imports import Imports
from receiving_site.holds import Person
from receiving_site.reconcile import Demographics
from receiving_site.redeem import RedeemRequest, RedeemResult, Unlocked
from site_agent.audit import AuditLog
from site_agent.errors import RelayRefused
from transfer_codes.codes import RedemptionCode
from transfer_codes.tokens import new_transfer_id
from transfer_codes.wire import Problem


@pytest.mark.asyncio
async def test_a_discarded_import_is_found_by_its_own_code_not_by_its_locator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a transfer is gone the relay gives its locator to another: the code of another
    patient's transfer with the same locator is redeemed, not sent to the discarded one's page."""
    first = RedemptionCode.generate(7)
    other = RedemptionCode.generate(7)
    assert other.compact() != first.compact()
    redeemed: list[str | None] = []
    tid = new_transfer_id()

    async def held(req: RedeemRequest, on_event: Any, confirm: Any = None) -> Any:
        redeemed.append(req.secret)
        on_event(Unlocked(tid, "St. Mary's ED", False))
        raise errors.ReceivingError("held for review")

    monkeypatch.setattr(imports_module, "redeem", held)
    audit = AuditLog(tmp_path / "audit", time.time)
    imports = Imports(RedeemRequest("http://127.0.0.1:9", "credential", tmp_path), audit)
    job = imports.start(first, first.compact(), "clerk")
    assert job.task is not None
    await job.task
    person = Person("ER-1", "ROE^RICHARD", "19700301", "M")
    imports.discarded(tid, held_study(tid, theirs=person, at=1.0), "clerk")
    assert job.discarded

    assert imports.start(first, first.compact(), "clerk") is job  # its page says so
    assert redeemed == [first.compact()]
    again = imports.start(other, other.compact(), "clerk")
    assert again is not job
    assert again.task is not None
    await again.task
    assert redeemed == [first.compact(), other.compact()]


@pytest.mark.asyncio
async def test_an_import_that_cannot_be_continued_is_not_offered_continue_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped where continuing cannot help (the study will never be whole), its key still
    here: after a restart it is listed as stopped, with the same sentence, and neither offered
    Continue nor resumed by itself."""
    code = RedemptionCode.generate(11)
    tid = new_transfer_id()
    runs: list[str | None] = []

    async def incomplete(req: RedeemRequest, on_event: Any, confirm: Any = None) -> Any:
        runs.append(req.resume)
        on_event(Unlocked(tid, "St. Mary's ED", False))
        state.save_key(
            req.state_dir, state.SavedKey(tid, req.relay, b"k" * 32, "St. Mary's", False)
        )
        raise errors.StudyIncomplete("The study will never be whole.")

    monkeypatch.setattr(imports_module, "redeem", incomplete)
    request = RedeemRequest("http://127.0.0.1:9", "credential", tmp_path)
    audit = AuditLog(tmp_path / "audit", time.time)
    first = Imports(request, audit)
    job = first.start(code, code.compact(), "clerk")
    assert job.task is not None
    await job.task
    assert (job.stage, job.continuable) == (imports_module.Stage.FAILED, False)

    again = Imports(request, audit)  # the console started again
    (listed,) = again.resume_unfinished()
    assert (listed.stage, listed.continuable) == (imports_module.Stage.FAILED, False)
    assert listed.problem == job.problem
    assert listed.task is None  # not resumed by itself
    again.resume(listed)  # nor by a Continue posted from a page left open
    assert listed.task is None
    assert runs == [None]


def _redemptions(audit: Path) -> list[dict[str, Any]]:
    lines = audit.read_text("utf-8").splitlines() if audit.exists() else []
    return [r for r in map(json.loads, lines) if r["action"] == "study-redeemed"]


@pytest.mark.asyncio
async def test_a_redemption_is_audited_once_however_many_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second click on the same code while the relay answers waits for the same import: one
    `study-redeemed`, with who started it and from where; a refused code likewise, once."""
    right, wrong = RedemptionCode.generate(12), RedemptionCode.generate(13)
    tid = new_transfer_id()
    answer = asyncio.Event()

    async def slow(req: RedeemRequest, on_event: Any, confirm: Any = None) -> Any:
        await answer.wait()
        if req.secret == wrong.compact():
            raise errors.ReceivingError("The relay did not accept this code.")
        on_event(Unlocked(tid, "St. Mary's ED", False))
        raise errors.ReceivingError("held for review")

    monkeypatch.setattr(imports_module, "redeem", slow)
    audit = AuditLog(tmp_path / "audit", time.time)
    imports = Imports(RedeemRequest("http://127.0.0.1:9", "credential", tmp_path), audit)
    first = imports.start(right, right.compact(), "clerk", "10.0.0.7")
    again = imports.start(right, right.compact(), "nurse", "10.0.0.8")  # a second click
    refused = imports.start(wrong, wrong.compact(), "clerk", "10.0.0.7")
    refused_again = imports.start(wrong, wrong.compact(), "clerk", "10.0.0.7")
    assert (again, refused_again) == (first, refused)
    answer.set()
    for job in (first, refused):
        assert job.task is not None
        await job.task
        assert job.recorded is not None
        await job.recorded

    records = _redemptions(audit.path)
    written = sorted((r["outcome"], r["who"], r["where"], r.get("detail")) for r in records)
    assert [(who, where, outcome, detail) for outcome, who, where, detail in written] == [
        ("clerk", "10.0.0.7", "refused", None),
        ("clerk", "10.0.0.7", "success", {"transfer": tid}),
    ]


@pytest.mark.asyncio
async def test_the_code_of_an_import_done_here_opens_that_import_not_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same code typed again once its study is imported (the sheet scanned twice, the next
    shift) opens that import, with where it was filed; it is not redeemed again, which would
    answer only "already delivered" and put that page, without the record, in its place. Also
    after a restart, for an import the code had opened before (its key keeps the code's
    digest)."""
    done_code, unfinished_code = RedemptionCode.generate(14), RedemptionCode.generate(15)
    done_tid, unfinished_tid = new_transfer_id(), new_transfer_id()
    runs: list[str | None] = []
    filed = Demographics("MRN-700", "COUNTY", "DOE^JANE", "19850214", "F")

    async def imported(req: RedeemRequest, on_event: Any, confirm: Any = None) -> Any:
        runs.append(req.secret)
        if req.secret == unfinished_code.compact():  # redeemed; the agent stops before import
            on_event(Unlocked(unfinished_tid, "St. Mary's ED", False))
            saved = state.SavedKey(
                unfinished_tid,
                req.relay,
                b"k" * 32,
                "St. Mary's ED",
                False,
                code=state.code_digest(unfinished_code.compact()),
            )
            state.save_key(req.state_dir, saved)
            raise errors.ReceivingError("The agent stopped.")
        on_event(Unlocked(done_tid, "St. Mary's ED", False))
        return RedeemResult(done_tid, 4, 100, "PACS", False, filed_under=filed)

    monkeypatch.setattr(imports_module, "redeem", imported)
    request = RedeemRequest("http://127.0.0.1:9", "credential", tmp_path)
    audit = AuditLog(tmp_path / "audit", time.time)
    imports = Imports(request, audit)
    for code in (done_code, unfinished_code):
        job = imports.start(code, code.compact(), "clerk")
        assert job.task is not None
        await job.task
    done = imports.find(done_tid)
    assert done is not None
    assert done.stage is imports_module.Stage.DONE

    again = imports.start(done_code, done_code.compact(), "nurse")
    assert again is done
    assert imports.find(done_tid) is done
    assert done.result is not None
    assert done.result.filed_under == filed
    assert runs == [done_code.compact(), unfinished_code.compact()]

    restarted = Imports(request, audit)  # the console started again
    (listed,) = restarted.resume_unfinished()
    assert listed.transfer_id == unfinished_tid
    assert restarted.open_for(unfinished_code) is listed
    assert restarted.start(unfinished_code, unfinished_code.compact(), "nurse") is listed
    assert runs == [done_code.compact(), unfinished_code.compact()]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("extra", "not_accepted"),
    [({}, True), ({"attempts_left": 9}, False)],  # spent, expired...; or wrong for a live one
)
async def test_a_code_the_relay_refuses_like_a_spent_one_is_marked_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], not_accepted: bool
) -> None:
    """Only the relay's generic refusal (no `attempts_left`) may be a code whose transfer this
    agent opened by its QR: the page then points to the list; a wrong code for a live transfer
    is only wrong."""
    code = RedemptionCode.generate(16)

    async def refused(req: RedeemRequest, on_event: Any, confirm: Any = None) -> Any:
        raise RelayRefused(403, Problem.CODE_NOT_ACCEPTED, "That code was not accepted.", extra)

    monkeypatch.setattr(imports_module, "redeem", refused)
    audit = AuditLog(tmp_path / "audit", time.time)
    imports = Imports(RedeemRequest("http://127.0.0.1:9", "credential", tmp_path), audit)
    job = imports.start(code, code.compact(), "clerk")
    assert job.task is not None
    await job.task
    assert (job.stage, job.transfer_id) == (imports_module.Stage.FAILED, "")
    assert job.not_accepted is not_accepted
