"""The ER console by keyboard alone and as a screen reader reads it, in headless Chromium at
1366 x 768, against the running agent and a real relay: the transfer page that updates itself
keeps what the nurse was typing and where the focus was, and says what changed; a refused
form puts the focus on what to correct, described by what was wrong; the upload's progress bar
says what it measures.

"The transfer changed" is the page's own poll answering with another version, as it does when
the relay reports a new state: the test changes the answer (Playwright's route), so that the
change comes while the nurse is at a given step."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess, agent_holding
from console_browsing import sign_in, snap, workstation
from e2e.harness import E2ERelay
from er_transfer_page import authorize_from_the_page
from playwright.async_api import Browser, Page, Route, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay, the upload, and the page's polls (every 2 s)


@asynccontextmanager
async def _the_study_page(browser: Browser, tmp_path: Path) -> AsyncIterator[tuple[Page, str]]:
    """The nurse, signed in, on the page of a study whose completeness has a warning (no PACS
    to compare with), with a relay offering County Trauma (its address)."""
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 3, seed=4141, patient_name="POE^EDGAR")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").focus()
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("heading", level=1)).to_contain_text("POE, EDGAR")
            yield page, relay.url
    finally:
        relay.stop()


async def _send_by_keyboard(page: Page) -> None:
    """On the study's page: the trauma center, the box, Send anyway, with the keyboard."""
    await page.get_by_label("Trauma center").select_option(label="County Trauma")
    await page.get_by_label("I have read the warnings").focus()
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Send anyway")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
    await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)


async def _changed(route: Route) -> None:
    """The page's poll, answered as the agent answers it but with another version."""
    response = await route.fetch()
    body = await response.json()
    body["version"] += "|changed"
    await route.fulfill(response=response, body=json.dumps(body))


async def test_a_half_typed_break_glass_is_kept_when_the_transfer_changes(
    browser: Browser, tmp_path: Path
) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        await _send_by_keyboard(page)
        summary = page.get_by_text("Nobody can consent? Break-glass")
        await summary.focus()
        await page.keyboard.press("Enter")
        reason = page.get_by_label("Why nobody can consent")
        await reason.focus()
        await page.keyboard.type("Unconscious after a fall, no family")
        answered = 0
        several = asyncio.Event()

        async def changed_and_counted(route: Route) -> None:
            nonlocal answered
            await _changed(route)
            answered += 1
            if answered == 3:
                several.set()

        await page.route("**/status.json", changed_and_counted)
        # Three of the page's polls are told of the change, however long each takes here.
        await asyncio.wait_for(several.wait(), SLOW / 1000)
        # Not reloaded under the nurse's fingers: the change is said in a live region, and what
        # was typed is there, the focus too.
        changed = page.get_by_role("status").filter(has_text="This transfer changed")
        await expect(changed).to_contain_text("what you typed", timeout=SLOW)
        await expect(reason).to_have_value("Unconscious after a fall, no family")
        await expect(reason).to_be_focused()
        await snap(page, "er-keyboard-typing-kept.png")
        # Cleared, the page shows the change (it reloads, the form closed and empty).
        async with page.expect_navigation(timeout=SLOW):
            await reason.fill("")
        await expect(page.get_by_label("Why nobody can consent")).to_be_hidden()


async def test_the_focus_stays_on_its_control_when_the_page_updates(
    browser: Browser, tmp_path: Path
) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        await _send_by_keyboard(page)
        await page.get_by_label("Paper").focus()
        await page.keyboard.press("Tab")
        button = page.get_by_role("button", name="Print the transfer sheet")
        await expect(button).to_be_focused()
        answered = []

        async def once(route: Route) -> None:
            if answered:
                await route.fallback()
                return
            answered.append(route)
            await _changed(route)

        await page.route("**/status.json", once)
        async with page.expect_navigation(timeout=SLOW):
            pass
        await page.wait_for_load_state()
        await expect(button).to_be_focused()
        assert await button.evaluate("e => e.matches(':focus-visible')")
        await snap(page, "er-keyboard-focus-kept.png")


async def test_a_refused_form_puts_the_focus_on_what_to_correct(
    browser: Browser, tmp_path: Path
) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        await page.get_by_label("Trauma center").select_option(label="County Trauma")
        await page.get_by_role("button", name="Send anyway").focus()
        await page.keyboard.press("Enter")
        box = page.get_by_label("I have read the warnings")
        await expect(box).to_be_focused()
        await expect(box).to_have_accessible_description(
            "Tick the box to say you have read the warnings, then send again, or wait."
        )
        await snap(page, "er-keyboard-tick-the-box.png")
        await page.keyboard.press("Space")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(page.locator("#code")).to_be_visible(timeout=SLOW)

        await page.get_by_text("Nobody can consent? Break-glass").focus()
        await page.keyboard.press("Enter")
        await page.get_by_label("Why nobody can consent").focus()
        await page.keyboard.type("unconscious")
        await page.keyboard.press("Tab")
        await page.keyboard.type("Dr. Grey")
        await page.keyboard.press("Enter")
        reason = page.get_by_label("Why nobody can consent")
        await expect(reason).to_be_focused()
        await expect(reason).to_have_accessible_description(re.compile("must be a sentence"))
        await expect(reason).to_have_value("unconscious")
        await snap(page, "er-keyboard-break-glass-refused.png")
        # Only the clinician missing: the focus is there, described the same way.
        await reason.fill("Unconscious after a fall, no family reachable.")
        await page.get_by_label("Authorizing clinician").fill("")
        await page.get_by_role("button", name="Authorize by break-glass").focus()
        await page.keyboard.press("Enter")
        clinician = page.get_by_label("Authorizing clinician")
        await expect(clinician).to_be_focused()
        await expect(clinician).to_have_accessible_description(
            re.compile("Enter the name of the clinician")
        )


async def test_a_screen_reader_hears_what_changed_when_the_page_updates(
    browser: Browser, tmp_path: Path
) -> None:
    """The page reloads with the focus where it was, so a screen reader says that control, not
    the page from its top: what changed is said in a live region filled after the reload."""
    async with _the_study_page(browser, tmp_path) as (page, relay_url):
        await _send_by_keyboard(page)
        await page.get_by_label("Paper").focus()
        await page.keyboard.press("Tab")
        async with page.expect_navigation(timeout=SLOW):
            await authorize_from_the_page(page, relay_url)
        await page.wait_for_load_state()
        await expect(page.get_by_role("button", name="Print the transfer sheet")).to_be_focused()
        said = page.locator("#updated")
        await expect(said).to_have_attribute("role", "status")
        state = (await page.locator("#state").inner_text()).strip()
        assert state.startswith("Authorized by the patient")
        await expect(said).to_have_text(f"The page updated: {state}")


async def test_the_upload_bar_says_what_it_measures(browser: Browser, tmp_path: Path) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        await _send_by_keyboard(page)
        await expect(page.get_by_role("progressbar")).to_have_accessible_name("Upload")


async def test_print_the_transfer_sheet_says_it_opens_a_new_tab(
    browser: Browser, tmp_path: Path
) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        await _send_by_keyboard(page)
        await expect(page.locator("#print-sheet")).to_have_accessible_name(
            "Print the transfer sheet (opens in a new tab)"
        )
        # Said, not shown: the button looks as it did.
        box = await page.locator("#print-sheet .visually-hidden").bounding_box()
        assert box is not None
        assert box["width"] <= 1
        assert box["height"] <= 1


async def test_every_column_of_the_series_table_has_a_heading(
    browser: Browser, tmp_path: Path
) -> None:
    async with _the_study_page(browser, tmp_path) as (page, _):
        headings = page.locator("#series").get_by_role("columnheader")
        await expect(headings).to_have_count(4)
        for heading in await headings.all():
            await expect(heading).to_have_accessible_name(re.compile(r"\w"))


async def test_a_pacs_search_with_nothing_filled_in_puts_the_focus_on_the_first_field(
    browser: Browser, tmp_path: Path
) -> None:
    # Refused before any PACS or relay is asked: nothing listens at either address.
    agent = AgentProcess(
        tmp_path / "agent", "http://127.0.0.1:9", "unused", pacs=("PACS", "127.0.0.1", 9)
    )
    await asyncio.to_thread(agent.add_user)
    await asyncio.to_thread(agent.start)
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="Find in PACS").click()
            await page.get_by_label("Medical record number").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#problem")).to_be_visible()
            first = page.get_by_label("Medical record number")
            await expect(first).to_be_focused()
            await expect(first).to_have_attribute("aria-invalid", "true")
            await expect(first).to_have_accessible_description(
                re.compile("by medical record number, by accession number")
            )
            await snap(page, "er-keyboard-pacs-refused.png")
    finally:
        await asyncio.to_thread(agent.stop)
