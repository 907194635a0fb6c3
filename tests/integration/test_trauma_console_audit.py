"""Every access of the trauma console's identity step is in the agent's audit log, over real
HTTP (in-process, the redemption, the PACS's answers and the worklist's replaced by fakes): a
record number checked against the PACS (what it found, or why the number could not be
checked), Continue of a stopped import, and each worklist search (on an import's page and on a
held study's). Each record is checked field by field, and names no patient. Two registrars
checking different records on one import each import the record they checked: the first Import
pressed decides, the other is refused and told so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from console_harness import NURSE, NURSE_PASSWORD, Console, running_console
from held_studies import held_study
from test_console_app import browser_like, get, post, signed_in, token_of

from receiving_site import errors, hold_record, identity, state, worklist
from receiving_site.console import imports
from receiving_site.console.appkeys import IMPORTS
from receiving_site.console.imports import Stage
from receiving_site.reconcile import Demographics
from receiving_site.redeem import Confirm, Preview, RedeemEvent, RedeemRequest, Unlocked
from receiving_site.worklist import Candidate
from site_agent.console.appkeys import AUDIT
from transfer_codes.codes import RedemptionCode
from transfer_codes.manifest import StudySummary
from transfer_codes.tokens import new_transfer_id

pytestmark = pytest.mark.asyncio

ISSUER = "COUNTY"
WHERE = "127.0.0.1"
SUMMARY = StudySummary(
    patient_name="DOE^JANE",
    patient_id="ER-12345",
    issuer_of_patient_id="ER-GENERAL",
    patient_birth_date="19850214",
    patient_sex="F",
    study_instance_uid="1.2.3",
    study_date="20250101",
    study_description="CT",
    accession_number="",
    modalities=("CT",),
    series_count=1,
    instance_count=1,
    sending_site="St. Mary's",
    break_glass=False,
)
# On the worklist: the ER's patient (but male there) and another.
SCHEDULED = [
    Candidate("MRN-700", ISSUER, "DOE^JANE", "19850214", "M", "ACC-1", "CT HEAD", "20270115"),
    Candidate("MRN-701", ISSUER, "DOE^JOHN", "19700101", "M", "ACC-2", "CT CHEST", "20270115"),
]
WORKLIST = ("worklist.host=127.0.0.1", "worklist.port=9")  # asked through the fake only

OnEvent = Callable[[RedeemEvent], None]
Redeem = Callable[[RedeemRequest, OnEvent, Confirm | None], Awaitable[Any]]


def _ready(tmp_path: Path) -> tuple[str, ...]:
    credential = tmp_path / "credential"
    credential.write_text("site-credential\n", encoding="utf-8")
    return (
        f"relay.credential_file={credential}",
        "pacs.host=127.0.0.1",
        "pacs.port=9",
        f"identity.local_issuer={ISSUER}",
    )


def _at_the_preview(tid: str) -> Redeem:
    """A redemption of `tid` that shows its preview and waits for a person's decision (the
    test ends before one)."""

    async def redeem(req: RedeemRequest, on_event: OnEvent, confirm: Confirm | None) -> Any:
        on_event(Unlocked(tid, "St. Mary's ED", False))
        preview = Preview(SUMMARY, "St. Mary's ED")
        on_event(preview)
        assert confirm is not None
        await confirm(preview)
        raise OSError("the bench stops here")

    return redeem


def _confirmed_then_importing(tid: str) -> Redeem:
    """A redemption of `tid` that shows its preview, waits for a person's decision, then stays
    importing until the test ends."""

    async def redeem(req: RedeemRequest, on_event: OnEvent, confirm: Confirm | None) -> Any:
        on_event(Unlocked(tid, "St. Mary's ED", False))
        preview = Preview(SUMMARY, "St. Mary's ED")
        on_event(preview)
        assert confirm is not None
        await confirm(preview)
        await asyncio.Event().wait()  # cancelled when the console stops

    return redeem


def _stopping(tid: str, runs: list[RedeemRequest]) -> Redeem:
    """A redemption of `tid` that stops once unlocked (the disk full), each run in `runs`."""

    async def redeem(req: RedeemRequest, on_event: OnEvent, confirm: Confirm | None) -> Any:
        runs.append(req)
        on_event(Unlocked(tid, "St. Mary's ED", False))
        raise OSError(28, "No space left on device")

    return redeem


def _pacs_holding(records: dict[str, Demographics]) -> Callable[..., Demographics | None]:
    """`identity.find_patient` of a PACS holding `records`, by local patient ID."""

    def find_patient(pacs: object, patient_id: str, issuer: str) -> Demographics | None:
        return records.get(patient_id)

    return find_patient


def _audited(console: Console, *actions: str) -> list[dict[str, Any]]:
    """The records of `actions` in the audit log, oldest first, without their time and chain."""
    records = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    kept = ("action", "event_id", "who", "where", "outcome", "detail")
    return [{k: r.get(k, {}) for k in kept} for r in records if r["action"] in actions]


def _record(
    action: str, event_id: str, outcome: str = "success", **detail: object
) -> dict[str, Any]:
    return {
        "action": action,
        "event_id": event_id,
        "who": NURSE,
        "where": WHERE,
        "outcome": outcome,
        "detail": detail,
    }


def _by(who: str, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "who": who}


def _checked(outcome: str = "success", **detail: object) -> dict[str, Any]:
    return _record("import-record-checked", "110112", outcome, **detail)


def _searched(outcome: str = "success", **detail: object) -> dict[str, Any]:
    return _record("worklist-query", "110112", outcome, **detail)


async def _redeemed(client: Any, console: Console, token: str) -> None:
    code = RedemptionCode.generate(17).grouped()
    status, location, _ = await post(
        client, f"{console.url}/redeem", {"csrf_token": token, "code": code}
    )
    assert (status, location.startswith("/imports/")) == (303, True)


async def test_each_record_check_is_audited_with_what_the_pacs_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number the PACS has nothing for, one it holds with another birth date, one it holds
    in other letters, one no PACS can hold, and a PACS that cannot be asked: each check is in
    the audit log with the number, its issuer, and what was found (or why not), no name."""
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _at_the_preview(tid))
    pacs = {
        "MRN-556": Demographics("MRN-556", ISSUER, "DOE^JANE", "19850215", "F"),
        "MRN-557": Demographics("MRN-557", ISSUER, "DOE^JANE", "19850214", "F"),
    }
    monkeypatch.setattr(identity, "find_patient", _pacs_holding(pacs))
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        url = f"{console.url}/imports/{tid}/identity"
        answers: list[int] = []
        for mrn in ("MRN-555", "MRN-556", "mrn-557", "MRN*1"):
            form = {"csrf_token": token, "local_patient_id": mrn}
            answers.append((await post(client, url, form))[0])

        def unreachable(*_: object) -> None:
            raise errors.IdentityNotChecked("The PACS could not be asked.")

        monkeypatch.setattr(identity, "find_patient", unreachable)
        form = {"csrf_token": token, "local_patient_id": "MRN-558"}
        answers.append((await post(client, url, form))[0])

    assert answers == [303, 303, 400, 400, 400]
    asked = {"transfer": tid, "local_issuer": ISSUER, "from_worklist": False}
    assert _audited(console, "import-record-checked") == [
        _checked(**asked, local_patient_id="MRN-555", pacs_record="none", differences=[]),
        _checked(
            **asked, local_patient_id="MRN-556", pacs_record="found", differences=["birth-date"]
        ),
        _checked("refused", **asked, local_patient_id="mrn-557", why="in-other-letters"),
        _checked("refused", **asked, local_patient_id="MRN*1", why="not-a-record-number"),
        _checked("failure", **asked, local_patient_id="MRN-558", why="pacs-not-asked"),
    ]
    assert "DOE" not in console.audit.read_text("utf-8")


async def test_a_record_check_answered_after_the_import_moved_on_is_refused_with_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone confirmed the import while the PACS answered: the check is refused as moved on,
    and its record says what the PACS was asked and answered."""
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _at_the_preview(tid))
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        job = console.app[IMPORTS].find(tid)
        assert job is not None

        def confirmed_meanwhile(*_: object) -> None:  # the PACS has nothing for it
            job.stage = Stage.IMPORTING

        monkeypatch.setattr(identity, "find_patient", confirmed_meanwhile)
        form = {"csrf_token": token, "local_patient_id": "MRN-560"}
        status, location, _ = await post(client, f"{console.url}/imports/{tid}/identity", form)

    assert (status, location) == (303, f"/imports/{tid}")
    assert _audited(console, "import-record-checked") == [
        _checked(
            "refused",
            transfer=tid,
            why="moved-on",
            stage="importing",
            local_patient_id="MRN-560",
            already_confirmed=False,
            pacs_record="none",
            differences=[],
        )
    ]


async def test_continue_is_audited_with_the_stage_it_continued_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = new_transfer_id()
    runs: list[RedeemRequest] = []
    monkeypatch.setattr(imports, "redeem", _stopping(tid, runs))
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        job = console.app[IMPORTS].find(tid)
        assert job is not None
        assert (job.stage, job.continuable) == (Stage.FAILED, True)
        status, location, _ = await post(
            client, f"{console.url}/imports/{tid}/continue", {"csrf_token": token}
        )
        assert job.task is not None
        await job.task  # the run Continue started (it stops again)

    assert (status, location) == (303, f"/imports/{tid}")
    assert [r.resume for r in runs] == [None, tid]
    assert _audited(console, "import-continued") == [
        _record("import-continued", "110107", transfer=tid, stage="failed")
    ]


async def test_two_continues_at_once_resume_once_and_the_second_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registrars press Continue at once: one resumes the import and is recorded; the
    other finds it running, so it is recorded refused (moved on), not a second success. The
    first one's record is held until the second has been answered, as a slow disk would."""
    tid = new_transfer_id()
    runs: list[RedeemRequest] = []
    resumed_run_may_end = asyncio.Event()

    async def redeem(req: RedeemRequest, on_event: OnEvent, confirm: Confirm | None) -> Any:
        runs.append(req)
        on_event(Unlocked(tid, "St. Mary's ED", False))
        if req.resume:  # the resumed run is still running when the second Continue comes
            await resumed_run_may_end.wait()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imports, "redeem", redeem)
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        job = console.app[IMPORTS].find(tid)
        assert job is not None
        audit = console.app[AUDIT]
        record = audit.arecord
        second_recorded = asyncio.Event()
        held: list[str] = []

        async def first_continue_waits(action: str, **fields: Any) -> None:
            if action == "import-continued" and not held:
                held.append(action)
                await asyncio.wait_for(second_recorded.wait(), 60)  # a hang guard only
            elif action == "import-continued":
                second_recorded.set()
            await record(action, **fields)

        monkeypatch.setattr(audit, "arecord", first_continue_waits)
        url = f"{console.url}/imports/{tid}/continue"
        answers = await asyncio.gather(
            post(client, url, {"csrf_token": token}), post(client, url, {"csrf_token": token})
        )
        resumed_run_may_end.set()
        assert job.task is not None
        await job.task

    assert [(status, location) for status, location, _ in answers] == [(303, f"/imports/{tid}")] * 2
    assert [r.resume for r in runs] == [None, tid]
    recorded = _audited(console, "import-continued")
    assert sorted(recorded, key=lambda r: r["outcome"]) == [
        _record(
            "import-continued",
            "110107",
            "refused",
            transfer=tid,
            why="moved-on",
            stage="opening",
            already_confirmed=False,
        ),
        _record("import-continued", "110107", transfer=tid, stage="failed"),
    ]


async def test_each_worklist_search_of_an_import_is_audited_and_a_pick_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ER's patient looked up when the identity step is first shown, a search staff type,
    one the worklist cannot answer, and a record picked there and checked with the PACS: each
    in the audit log, by what it searched and how many it found, never the values."""
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _at_the_preview(tid))
    monkeypatch.setattr(identity, "find_patient", _pacs_holding({}))
    unreachable = errors.WorklistUnreachable()
    answers: list[list[Candidate] | Exception] = [SCHEDULED, SCHEDULED, unreachable]

    def find(*_: object) -> list[Candidate]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(worklist, "find", find)
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path), *WORKLIST) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        page = f"{console.url}/imports/{tid}"
        status, _, shown = await get(client, page)
        assert (status, "MRN-700" in shown) == (200, True)
        await get(client, page)  # the search of the ER's patient is asked once
        picked = {
            "csrf_token": token,
            "local_patient_id": "MRN-700",
            "local_issuer": ISSUER,
            "from_worklist": "yes",
        }
        assert (await post(client, f"{page}/identity", picked))[0] == 303
        by_number = {"patient_id": "MRN-70*"}
        by_name = {"patient_name": "doe*", "birth_date": "1985-02-14"}
        for typed in (by_number, by_name):
            form = {"csrf_token": token, **typed}
            assert (await post(client, f"{page}/worklist", form))[0] == 303

    assert answers == []
    on_page = {"transfer": tid, "page": "imports"}
    assert _audited(console, "worklist-query", "import-record-checked") == [
        _searched(**on_page, by="name and birth date", typed=False, found=2),
        _checked(
            transfer=tid,
            local_patient_id="MRN-700",
            local_issuer=ISSUER,
            from_worklist=True,
            pacs_record="none",
            differences=["sex"],
        ),
        _searched(**on_page, by="record number", typed=True, found=2),
        _searched("failure", **on_page, by="name and birth date", typed=True, why="unreachable"),
    ]
    assert "DOE" not in console.audit.read_text("utf-8")


async def test_a_worklist_search_on_a_held_studys_page_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = new_transfer_id()
    monkeypatch.setattr(worklist, "find", lambda *_: SCHEDULED[:1])
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path), *WORKLIST) as console,
        browser_like() as client,
    ):
        state_dir = tmp_path / "state"
        key = state.SavedKey(tid, "https://relay.test", b"k" * 32, "St. Mary's ED", False)
        state.save_key(state_dir, key)  # a study is held while its key is kept
        hold_record.save(state_dir, held_study(tid))
        token = await signed_in(client, console)
        form = {"csrf_token": token, "patient_name": "DOE*", "birth_date": "", "patient_id": ""}
        status, _, _ = await post(client, f"{console.url}/holds/{tid}/worklist", form)

    assert status == 200
    assert _audited(console, "worklist-query") == [
        _searched(transfer=tid, page="holds", by="name", typed=True, found=1)
    ]


OTHER = "registrar.lee"  # a second registrar, on another machine


async def _signed_in_as(client: Any, console: Console, user: str) -> str:
    """Sign `user` in (the nurse's password); the CSRF token of their session."""
    _, _, page = await get(client, f"{console.url}/sign-in")
    form = {"csrf_token": token_of(page), "user": user, "password": NURSE_PASSWORD, "next": "/"}
    status, _, _ = await post(client, f"{console.url}/sign-in", form)
    assert status == 303
    return token_of((await get(client, f"{console.url}/"))[2])


async def test_two_registrars_each_import_the_record_they_checked_and_the_first_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nurse checks MRN-555 on an import's page; another registrar, on another machine,
    then checks MRN-556 on the same import. Each page shows its own check and names the
    other's. The nurse's Import confirms MRN-555, the record she checked (it used to be refused
    as "record number changed", her check replaced by the other's); the other's Import is then
    refused as moved on, and their page says who confirmed which record. Every check and both
    Imports are audited as before, each with who made it."""
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _confirmed_then_importing(tid))
    monkeypatch.setattr(identity, "find_patient", _pacs_holding({}))
    users = {NURSE: NURSE_PASSWORD, OTHER: NURSE_PASSWORD}
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path), users=users) as console,
        browser_like() as nurse,
        browser_like() as other,
    ):
        token = await signed_in(nurse, console)
        await _redeemed(nurse, console, token)
        other_token = await _signed_in_as(other, console, OTHER)
        page = f"{console.url}/imports/{tid}"
        checks = [(nurse, token, "MRN-555"), (other, other_token, "MRN-556")]
        for client, csrf, mrn in checks:
            form = {"csrf_token": csrf, "local_patient_id": mrn}
            assert (await post(client, f"{page}/identity", form))[:2] == (
                303,
                f"/imports/{tid}#identity",
            )
        _, _, hers = await get(nurse, page)
        _, _, theirs = await get(other, page)
        assert '<strong id="checked-mrn">MRN-555</strong>' in hers
        assert '<strong id="checked-mrn">MRN-556</strong>' in theirs
        assert (
            f"Checked on another page, not imported yet: {OTHER} checked record MRN-556 "
            f"(issuer {ISSUER}) on 20"
        ) in hers
        assert f"{NURSE} checked record MRN-555 (issuer {ISSUER}) on 20" in theirs
        assert "the first Import into the PACS pressed decides" in hers

        imported = {"csrf_token": token, "local_patient_id": "MRN-555", "ack-new": "1"}
        answer = await post(nurse, f"{page}/import", imported)
        job = console.app[IMPORTS].find(tid)
        assert job is not None
        assert (job.stage, job.decided_by) == (Stage.IMPORTING, NURSE)
        assert job.filing is not None
        assert job.filing.local_patient_id == "MRN-555"

        late = {"csrf_token": other_token, "local_patient_id": "MRN-556", "ack-new": "1"}
        late_answer = await post(other, f"{page}/import", late)
        _, _, told = await get(other, page)

    assert answer[:2] == (303, f"/imports/{tid}")
    assert late_answer[:2] == (303, f"/imports/{tid}")
    assert "Your choice (record MRN-556) was not used" in told
    assert f"{NURSE} confirmed it on 20" in told
    assert f"under record MRN-555 (issuer {ISSUER})" in told
    asked = {"transfer": tid, "local_issuer": ISSUER, "from_worklist": False}
    found = {"pacs_record": "none", "differences": []}
    assert _audited(console, "import-record-checked", "import-confirmed") == [
        _checked(**asked, local_patient_id="MRN-555", **found),
        _by(OTHER, _checked(**asked, local_patient_id="MRN-556", **found)),
        _record(
            "import-confirmed",
            "110107",
            transfer=tid,
            local_patient_id="MRN-555",
            local_issuer=ISSUER,
            from_worklist=False,
            differences_acknowledged=["new"],
        ),
        _by(
            OTHER,
            _record(
                "import-confirmed",
                "110107",
                "refused",
                transfer=tid,
                why="moved-on",
                stage="importing",
                local_patient_id="MRN-556",
                already_confirmed=False,
            ),
        ),
    ]


async def test_a_record_checked_in_another_tab_is_the_one_imported_after_a_second_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One registrar checks MRN-555, then MRN-556 in another tab, then presses Import in the
    first: nothing is imported, and the page says a record was checked in another tab since,
    and shows that one to check."""
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _at_the_preview(tid))
    monkeypatch.setattr(identity, "find_patient", _pacs_holding({}))
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)
        await _redeemed(client, console, token)
        page = f"{console.url}/imports/{tid}"
        for mrn in ("MRN-555", "MRN-556"):
            form = {"csrf_token": token, "local_patient_id": mrn}
            assert (await post(client, f"{page}/identity", form))[0] == 303
        imported = {"csrf_token": token, "local_patient_id": "MRN-555", "ack-new": "1"}
        status, _, shown = await post(client, f"{page}/import", imported)
        job = console.app[IMPORTS].find(tid)
        assert job is not None

    assert (status, job.stage, job.decided_by) == (400, Stage.PREVIEW, "")
    assert "Another record number was checked from this sign-in since this page" in shown
    assert '<strong id="checked-mrn">MRN-556</strong>' in shown
    assert "checked-elsewhere" not in shown  # the same person's own check
