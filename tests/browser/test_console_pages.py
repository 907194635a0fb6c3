"""The console framework in real Chromium at 1366 x 768, against the agents' consoles
in-process with a frozen clock: sign in, a wrong password, the idle timeout back to sign-in, a
form posted without its CSRF token refused, sign-out. Screenshots go to
test-artifacts/browser/console/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_browsing import expect_signed_in_as, fits_the_screen, sign_in, snap, workstation
from console_harness import NURSE, NURSE_PASSWORD, running_console
from playwright.async_api import Browser, expect

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

IDLE = 30 * 60.0


def _actions(audit: Path) -> list[str]:
    return [json.loads(line)["action"] for line in audit.read_text("utf-8").splitlines()]


async def test_sign_in_and_sign_out(tmp_path: Path, browser: Browser) -> None:
    async with running_console(tmp_path) as console, workstation(browser) as page:
        await page.goto(console.url)
        await expect(page).to_have_url(f"{console.url}/sign-in")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(page.get_by_label("User name")).to_be_focused()
        await expect(page.locator(".site-name")).to_have_text("St. Mary's Emergency Department")
        assert await fits_the_screen(page)
        await snap(page, "sign-in.png")

        await sign_in(page, console.url, "Nurse.Joy", NURSE_PASSWORD)
        await expect(page).to_have_url(f"{console.url}/")
        await expect_signed_in_as(page, NURSE)
        await expect(page.locator("#placeholder")).to_contain_text("No study has arrived yet")
        await expect(page).to_have_title("Recent studies · St. Mary's Emergency Department")
        assert await fits_the_screen(page)
        await snap(page, "sender-home.png")

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{console.url}/sign-in?ended=signed-out")
        await expect(page.locator("#notice")).to_have_text("You are signed out.")
        await snap(page, "signed-out.png")
        await page.goto(console.url)
        await expect(page).to_have_url(f"{console.url}/sign-in")
    assert _actions(console.audit) == ["sign-in", "sign-out"]


async def test_a_wrong_password_says_so_and_keeps_the_name(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_console(tmp_path, "receiver") as console, workstation(browser) as page:
        await sign_in(page, console.url, NURSE, "wrong horse battery staple")
        problem = page.get_by_role("alert")
        await expect(problem).to_have_text(
            "That user name and password do not match. Check both (and Caps Lock), then try again."
        )
        await expect(page.get_by_label("User name")).to_have_value(NURSE)
        await expect(page.get_by_label("Password")).to_have_value("")
        await expect(page.get_by_label("Password")).to_be_focused()
        await snap(page, "wrong-password.png")
        await page.get_by_label("Password").fill(NURSE_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#code-hint")).to_contain_text("Type the 16 characters")
        await expect(page.get_by_role("heading", name="Enter a code")).to_be_visible()
        await snap(page, "receiver-home.png")


async def test_the_idle_timeout_sends_back_to_sign_in(tmp_path: Path, browser: Browser) -> None:
    async with running_console(tmp_path) as console, workstation(browser) as page:
        await sign_in(page, console.url, NURSE, NURSE_PASSWORD)
        await expect_signed_in_as(page, NURSE)
        console.clock.advance(IDLE)
        await page.reload()
        await expect(page).to_have_url(f"{console.url}/sign-in?ended=idle")
        await expect(page.locator("#notice")).to_have_text(
            "You were signed out after 30 minutes without activity. Sign in to continue."
        )
        await expect(page.locator("#signed-in-user")).to_have_count(0)
        await snap(page, "idle-timeout.png")
        await page.get_by_label("User name").fill(NURSE)
        await page.get_by_label("Password").fill(NURSE_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect_signed_in_as(page, NURSE)
    assert _actions(console.audit) == ["sign-in", "session-expired", "sign-in"]


async def test_a_form_posted_without_its_token_is_refused(tmp_path: Path, browser: Browser) -> None:
    async with running_console(tmp_path) as console, workstation(browser) as page:
        await sign_in(page, console.url, NURSE, NURSE_PASSWORD)
        await expect_signed_in_as(page, NURSE)
        # As a forged form would: the sign-out form without its hidden token.
        await page.locator("form.who input[name=csrf_token]").evaluate("e => e.remove()")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Nothing was done")).to_be_visible()
        await expect(page.locator("#problem")).to_have_text(
            "This form had expired, or did not come from this console, so nothing was done. "
            "Go back, reload the page and try again."
        )
        await snap(page, "form-refused.png")
        await page.get_by_role("link", name="Go to the home page").click()
        await expect_signed_in_as(page, NURSE)  # the forged sign-out did nothing
    assert _actions(console.audit) == ["sign-in", "form-refused"]


async def test_the_pages_work_without_javascript(tmp_path: Path, browser: Browser) -> None:
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 1366, "height": 768}
    )
    try:
        async with running_console(tmp_path) as console:
            page = await context.new_page()
            await sign_in(page, console.url, NURSE, NURSE_PASSWORD)
            await expect_signed_in_as(page, NURSE)
            await page.get_by_role("button", name="Sign out").click()
            await expect(page.locator("#notice")).to_have_text("You are signed out.")
    finally:
        await context.close()
