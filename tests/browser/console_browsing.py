"""Helpers for the console's browser tests: a 1366 x 768 workstation page in Debian's Chromium
(script errors and CSP refusals fail the test, as on the phone), signing in, screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from phone_harness import ARTIFACTS, phone
from playwright.async_api import Browser, Page, expect

WORKSTATION = {"width": 1366, "height": 768}
CONSOLE_ARTIFACTS = ARTIFACTS / "console"


@asynccontextmanager
async def workstation(browser: Browser, **options: Any) -> AsyncIterator[Page]:
    """`options`: more of the browser context's (`java_script_enabled=False`...)."""
    async with phone(
        browser,
        viewport=WORKSTATION,
        device_scale_factor=1,
        is_mobile=False,
        has_touch=False,
        locale="en-US",
        **options,
    ) as (_, page):
        yield page


async def sign_in(page: Page, url: str, user: str, password: str) -> None:
    await page.goto(f"{url}/sign-in")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def fits_the_screen(page: Page) -> bool:
    """Nothing wider than the screen: no sideways scrolling at 1366 px."""
    return bool(
        await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    )


async def snap(page: Page, name: str) -> Path:
    CONSOLE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = CONSOLE_ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


async def expect_signed_in_as(page: Page, user: str) -> None:
    await expect(page.locator("#signed-in-user")).to_have_text(user)
