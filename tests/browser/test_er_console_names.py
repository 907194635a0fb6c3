"""What a screen reader hears of the ER console's list of transfers, in headless Chromium at
1366 x 768, against the running agent and a real relay: each transfer's link says whose transfer
it is and where it goes, not its 24-character id (which stays on screen for staff)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, agent_holding
from console_browsing import sign_in, snap, workstation
from e2e.harness import E2ERelay
from er_transfer_page import send_anyway
from playwright.async_api import Browser, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay and the upload


async def test_a_transfer_link_names_the_patient_and_the_trauma_center(
    browser: Browser, tmp_path: Path
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 3, seed=7171, patient_name="POE^EDGAR")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            transfer_path = urlsplit(page.url).path
            transfer_id = transfer_path.rsplit("/", 1)[1]

            await page.get_by_role("link", name="Transfers").click()
            row = page.locator("#transfers tbody tr")
            await expect(row).to_have_count(1)
            link = row.get_by_role("link")
            await expect(link).to_have_count(1)
            await expect(link).to_have_accessible_name(
                re.compile(r"^POE, EDGAR\b.*: transfer to County Trauma")
            )
            name = await link.evaluate("(a) => a.textContent")
            assert transfer_id not in name
            await expect(row).to_contain_text(transfer_id)  # still there for staff
            await snap(page, "er-transfers-list.png")
            await link.click()
            assert urlsplit(page.url).path == transfer_path
    finally:
        relay.stop()
