"""Two registrars on one import, against real peers: both reach the record-check step, the first
confirms a record, and the second then confirms from a page left open. Their click changes
nothing, and their page says so: whose confirmation was used, when, under which record, and
what to do if that is wrong; briefly when they chose the same record. The import's page shows
everyone watching who confirmed and under which record while it imports; Orthanc holds the
images under the first registrar's record only, and the refused confirmation is in the audit
log."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from console_browsing import expect_signed_in_as, sign_in, snap, workstation
from e2e.conftest import fresh_relay
from e2e.harness import E2ERelay, run_cli, sop_instance_uid
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, Page, expect
from test_trauma_console import WAIT_MS, _open_with_code, _pushed
from trauma_harness import (
    LOCAL_ISSUER,
    PASSWORD,
    USER,
    ReceivingAgent,
    configured_agent,
    pacs_paused_at_first_image,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]
relay = fresh_relay  # a relay process of each test's own

OTHER = "registrar.lee"  # the second registrar, on another machine
MINUTE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def _with_second_registrar(agent: ReceivingAgent) -> ReceivingAgent:
    add = ["receiver", "user", "add", OTHER, "--config", str(agent.config)]
    run_cli(add, cwd=agent.root, stdin=PASSWORD).ok()
    return agent


async def _at_the_record_check(page: Page, agent: ReceivingAgent, user: str, tid: str) -> None:
    """`user` signs in on their machine and opens the import a colleague's code opened."""
    await sign_in(page, agent.url, user, PASSWORD)
    await expect_signed_in_as(page, user)
    await page.goto(f"{agent.url}/imports/{tid}")
    await expect(page.get_by_label("This hospital's medical record number (MRN)")).to_be_visible()


async def _checked_as_new_record(page: Page, mrn: str) -> None:
    """Check `mrn` (the PACS has nothing for it) and tick that it was just given: the Import
    button is next."""
    await page.get_by_label("This hospital's medical record number (MRN)").fill(mrn)
    await page.get_by_role("button", name="Check this record").click()
    await expect(page.locator("#checked-mrn")).to_have_text(mrn, timeout=WAIT_MS)
    await page.get_by_label(f"{mrn} was just given to this patient").check()


async def _import_clicked(page: Page, tid: str) -> int:
    """Press Import into the PACS; the status of the page the click ends on (not the page's
    own refreshes in the meantime)."""
    async with page.expect_response(
        lambda r: r.request.is_navigation_request() and r.url.endswith(f"/imports/{tid}")
    ) as answered:
        await page.get_by_role("button", name="Import into the PACS").click()
    return (await answered.value).status


def _patient_ids(orthanc: OrthancServer, files: list[Path]) -> set[str]:
    """The PatientID of each of the study's images in Orthanc (all must be there)."""
    ids = set()
    for path in files:
        found = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        ids.add(orthanc.instance_tags(found)["PatientID"])
    return ids


def _minutes_of(record: dict[str, Any]) -> set[str]:
    """How a page names the minute of an audit record (or the next: the page's clock is read
    just after the record is written)."""
    at = datetime.datetime.fromisoformat(record["at"])
    return {(at + datetime.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M UTC") for m in (0, 1)}


def _confirmations(agent: ReceivingAgent) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (r["outcome"], r["who"], r["where"], r["detail"]) for r in agent.audited("import-confirmed")
    ]


async def test_a_second_registrars_other_record_from_a_page_left_open_is_refused_and_told(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """The first registrar (script on) checks MRN-555; the second (script off, on another
    machine) then checks MRN-556, and their page names the first's check. The first's Import
    confirms MRN-555, the record they checked (a later check on another machine does not
    replace it); the second, whose page still shows MRN-556 checked, then presses Import.
    While the import runs (the PACS paused so that it is seen), the second's page says their
    choice was not used, nothing changed, who confirmed, when and under which record, and to
    call the PACS administrators if that is wrong; it does not refresh itself under the
    notice, and a reload sends nothing again. Both pages show who confirmed and the record
    while it imports."""
    files, _, pushed = _pushed(relay, tmp_path, seed=93, slices=(300, 100))
    tid = pushed["transfer_id"]
    agent = _with_second_registrar(configured_agent(relay, orthanc, tmp_path / "tc")).start()
    try:
        async with (
            workstation(browser) as first,
            workstation(browser, java_script_enabled=False) as second,
        ):
            await _open_with_code(first, agent, pushed["code"])
            await _at_the_record_check(second, agent, OTHER, tid)
            await _checked_as_new_record(first, "MRN-555")
            await _checked_as_new_record(second, "MRN-556")
            await expect(second.locator("#checked-elsewhere")).to_contain_text(
                f"{USER} checked record MRN-555 (issuer {LOCAL_ISSUER}) on "
            )
            assert await _import_clicked(first, tid) == 200

            async with pacs_paused_at_first_image(orthanc, WAIT_MS):
                confirmed = re.compile(
                    rf"^Confirmed by {re.escape(USER)} on {MINUTE}, under this hospital's "
                    rf"record MRN-555 \(issuer {LOCAL_ISSUER}\)\.$"
                )
                await expect(first.locator("#confirmed-by")).to_have_text(
                    confirmed, timeout=WAIT_MS
                )
                assert await _import_clicked(second, tid) == 200
                assert second.url == f"{agent.url}/imports/{tid}"  # no record number in it
                stale = second.locator("#stale")
                await expect(stale.get_by_role("heading")).to_have_text("Your choice was not used")
                await expect(stale.locator("p").nth(0)).to_have_text(
                    "Your choice (record MRN-556) was not used: nothing was changed by this click."
                )
                await expect(stale.locator("p").nth(1)).to_have_text(
                    re.compile(
                        rf"^This import was already confirmed: {re.escape(USER)} confirmed it "
                        rf"on {MINUTE} under record MRN-555 \(issuer {LOCAL_ISSUER}\)\. It is "
                        r"being imported into the PACS now\.$"
                    )
                )
                await expect(stale.locator("p").nth(2)).to_have_text(
                    "If MRN-555 is not this patient's record, call the PACS administrators now "
                    "to move these images to the right record, and tell radiology: nothing on "
                    "this page changes where they are filed."
                )
                await expect(second.locator("#confirmed-by")).to_have_text(confirmed)
                shown = await stale.locator("p").nth(1).text_content() or ""
                # Without its script the page does not refresh itself under the notice.
                assert await second.locator("noscript meta[http-equiv=refresh]").count() == 0
                await snap(second, "trauma-stale-confirm-other-record.png")
                await snap(first, "trauma-stale-confirm-first-registrar-importing.png")

                # A reload sends nothing again: the page as it is, without the notice.
                await second.reload()
                await expect(second.locator("#progress-text")).to_be_visible()
                await expect(second.locator("#stale")).to_have_count(0)
                await expect(second.locator("#confirmed-by")).to_have_text(confirmed)
            await expect(first.locator("#result")).to_contain_text(
                f"Imported {len(files)} verified images", timeout=WAIT_MS
            )
            await expect(first.locator("#filed-under")).to_contain_text("patient ID MRN-555")
    finally:
        agent.stop()

    assert orthanc.get_json("/statistics")["CountInstances"] == len(files)
    assert _patient_ids(orthanc, files) == {"MRN-555"}
    confirmations = _confirmations(agent)
    assert [c[:3] for c in confirmations] == [
        ("success", USER, "127.0.0.1"),
        ("refused", OTHER, "127.0.0.1"),
    ]
    assert confirmations[0][3]["local_patient_id"] == "MRN-555"
    assert confirmations[1][3] == {
        "transfer": tid,
        "why": "moved-on",
        "stage": "importing",
        "local_patient_id": "MRN-556",
        "already_confirmed": False,
    }
    (first_record,) = [r for r in agent.audited("import-confirmed") if r["outcome"] == "success"]
    assert any(minute in shown for minute in _minutes_of(first_record))
    assert len(agent.audited("study-imported")) == 1


async def test_a_second_registrars_same_record_from_a_page_left_open_is_told_briefly(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """Both registrars check MRN-557; the first (script off) confirms it and the study is
    imported; the second (script on), their page left open, then presses Import: their page
    says briefly that it was already confirmed under that record by the first, when, and that
    there is nothing more to do. The refusal is in the audit log, as already confirmed. Then
    the first registrar's other tab, left open at the record check, checks MRN-558: not used
    either, and told what the import became (done, under MRN-557)."""
    files, _, pushed = _pushed(relay, tmp_path, seed=94, slices=(2, 2))
    tid = pushed["transfer_id"]
    agent = _with_second_registrar(configured_agent(relay, orthanc, tmp_path / "tc")).start()
    try:
        async with (
            workstation(browser, java_script_enabled=False) as first,
            workstation(browser) as second,
        ):
            await _open_with_code(first, agent, pushed["code"])
            other_tab = await first.context.new_page()
            await other_tab.goto(f"{agent.url}/imports/{tid}")
            mrn_field = other_tab.get_by_label("This hospital's medical record number (MRN)")
            await expect(mrn_field).to_be_visible()
            await _at_the_record_check(second, agent, OTHER, tid)
            await _checked_as_new_record(second, "MRN-557")
            await _checked_as_new_record(first, "MRN-557")
            await first.get_by_role("button", name="Import into the PACS").click()
            await expect(first.locator("#result")).to_contain_text(
                f"Imported {len(files)} verified images", timeout=WAIT_MS
            )

            assert await _import_clicked(second, tid) == 200
            stale = second.locator("#stale")
            await expect(stale.get_by_role("heading")).to_have_text("Already confirmed")
            await expect(stale.locator("p").nth(0)).to_have_text(
                re.compile(
                    rf"^{re.escape(USER)} already confirmed this import on {MINUTE} under record "
                    rf"MRN-557 \(issuer {LOCAL_ISSUER}\), the record you chose\. Nothing was "
                    r"changed by your click, and there is nothing more to do\.$"
                )
            )
            await expect(stale).not_to_contain_text("PACS administrators")
            await expect(second.locator("#result")).to_contain_text(
                f"Imported {len(files)} verified images"
            )
            await snap(second, "trauma-stale-confirm-same-record.png")
            await second.get_by_role("link", name="Close this notice").click()
            await expect(second.locator("#stale")).to_have_count(0)

            await mrn_field.fill("MRN-558")
            await other_tab.get_by_role("button", name="Check this record").click()
            stale = other_tab.locator("#stale")
            await expect(stale.locator("p").nth(0)).to_have_text(
                "Your choice (record MRN-558) was not used: nothing was changed by this click."
            )
            await expect(stale.locator("p").nth(1)).to_have_text(
                re.compile(
                    rf"^This import was already confirmed: {re.escape(USER)} confirmed it on "
                    rf"{MINUTE} under record MRN-557 \(issuer {LOCAL_ISSUER}\)\. It is done: "
                    rf"{len(files)} images are in the PACS\.$"
                )
            )
            await expect(stale.locator("p").nth(2)).to_contain_text(
                "If MRN-557 is not this patient's record, call the PACS administrators now"
            )
            assert other_tab.url == f"{agent.url}/imports/{tid}"
            await snap(other_tab, "trauma-stale-record-check-after-import.png")
    finally:
        agent.stop()

    assert _patient_ids(orthanc, files) == {"MRN-557"}
    confirmations = _confirmations(agent)
    assert [c[:2] for c in confirmations] == [("success", USER), ("refused", OTHER)]
    assert confirmations[1][3] == {
        "transfer": tid,
        "why": "moved-on",
        "stage": "done",
        "local_patient_id": "MRN-557",
        "already_confirmed": True,
    }
    checks = [(r["outcome"], r["who"], r["detail"]) for r in agent.audited("import-record-checked")]
    checked = {
        "transfer": tid,
        "local_patient_id": "MRN-557",
        "local_issuer": LOCAL_ISSUER,
        "from_worklist": False,
        "pacs_record": "none",
        "differences": [],
    }
    assert checks == [
        ("success", OTHER, checked),  # each registrar's check asked the PACS
        ("success", USER, checked),
        (
            "refused",
            USER,
            {
                "transfer": tid,
                "why": "moved-on",
                "stage": "done",
                "local_patient_id": "MRN-558",
                "already_confirmed": False,
            },
        ),
    ]
