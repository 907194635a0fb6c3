"""A transfer's page open in two tabs, in headless Chromium at 1366 x 768, against the running
agent and a real relay: a new code given in one tab replaces the old code and its QR in the
other, which updates itself; the status it polls never carries the code; the sheet printed from
the tab left open is the current code's. A "Give a new code" left open while the trauma center
redeemed the transfer changes nothing, and its answer says so on the transfer's page."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, agent_holding
from console_browsing import sign_in, snap, workstation
from e2e.harness import E2ERelay
from er_transfer_page import authorize_from_the_page, send_anyway
from playwright.async_api import Browser, expect
from test_er_console_actions import pdf_text

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay and the upload
POLLS = 30_000  # ms: many of the page's polls (every 2 s)


async def test_a_new_code_replaces_the_old_one_in_another_tab(
    browser: Browser, tmp_path: Path
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 3, seed=5151, patient_name="POE^EDGAR")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            # Nothing else left to change on the page: only the new code can reload the other.
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            old_code = (await page.locator("#code").inner_text()).strip()
            old_qr = await page.locator("#code-qr").get_attribute("src")
            transfer_path = urlsplit(page.url).path

            other = await page.context.new_page()
            await other.goto(f"{agent.url}{transfer_path}")
            await expect(other.locator("#code")).to_have_text(old_code)
            await expect(other.locator("#state")).to_contain_text("Awaiting authorization")

            await page.get_by_role("link", name="Give a new code").click()
            await page.get_by_role("button", name="Yes, give a new code").click()
            await expect(page.locator("#notice")).to_contain_text("A new code was issued")
            new_code = (await page.locator("#code").inner_text()).strip()
            assert new_code != old_code

            # The other tab, still awaiting authorization, follows by itself.
            await expect(other.locator("#code")).to_have_text(new_code, timeout=POLLS)
            await expect(other.locator("#code-qr")).not_to_have_attribute("src", old_qr or "")
            await expect(other.locator("#state")).to_contain_text("Awaiting authorization")
            assert old_code not in await other.content()
            await snap(other, "er-transfer-other-tab-new-code.png")

            # What the tabs poll says that something changed, never what the code is.
            status = await page.context.request.get(f"{agent.url}{transfer_path}/status.json")
            said = await status.text()
            for code in (old_code, new_code):
                assert code not in said
                assert re.sub(r"\W", "", code) not in re.sub(r"\W", "", said)

            # A sheet printed from a tab left open is the current code's.
            token = await other.locator('input[name="csrf_token"]').first.get_attribute("value")
            sheet = await page.context.request.post(
                f"{agent.url}{transfer_path}/sheet",
                form={"csrf_token": token or "", "paper": "a4"},
                headers={"Origin": agent.url},
            )
            assert sheet.status == 200
            (tmp_path / "sheet.pdf").write_bytes(await sheet.body())
            printed = pdf_text(tmp_path / "sheet.pdf")
            assert new_code in printed
            assert old_code not in printed
    finally:
        relay.stop()


async def test_a_new_code_asked_from_a_page_left_open_after_the_transfer_was_redeemed(
    browser: Browser, tmp_path: Path
) -> None:
    """The page asking once more for a new code is left open (its script off: it is a form) while
    the trauma center redeems the transfer and stores the study. Its "Yes, give a new code" then
    redirects (303) to the transfer's page (200, not an error), which says no new code was
    given and nothing changed, and why, once: a reload asks nothing again. The relay issued no
    new code, and the refusal is audited."""
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 2, seed=5252, patient_name="POE^EDGAR")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with (
            holding as agent,
            workstation(browser) as page,
            workstation(browser, java_script_enabled=False) as other,
        ):
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            code = (await page.locator("#code").inner_text()).strip()
            transfer_path = urlsplit(page.url).path
            transfer_id = transfer_path.rsplit("/", 1)[1]
            await authorize_from_the_page(page, relay.url)

            await sign_in(other, agent.url, NURSE, NURSE_PASSWORD)
            await other.goto(f"{agent.url}{transfer_path}/reissue")
            await expect(other.get_by_role("heading")).to_have_text(
                "Give this transfer a new code?"
            )
            redeemed = await asyncio.to_thread(
                relay.redeem, code, workdir=tmp_path, out=tmp_path / "out"
            )
            assert redeemed.ok().json()["instances"] == 2

            async with other.expect_response(
                lambda r: r.request.method == "POST" and r.url.endswith("/reissue")
            ) as answered:
                await other.get_by_role("button", name="Yes, give a new code").click()
            assert (await answered.value).status == 303
            await expect(other).to_have_url(f"{agent.url}{transfer_path}")
            await expect(other.get_by_role("heading", level=1)).to_have_text(
                "Transfer to County Trauma"
            )
            await expect(other.locator("#problem")).to_have_text(
                "No new code was given, and nothing was changed: since this page was opened, "
                "this transfer was delivered to the trauma center. Where it stands now is below."
            )
            await expect(other.locator("#state")).to_contain_text("elivered")
            await expect(other.locator("#code")).to_have_count(0)
            await snap(other, "er-transfer-stale-new-code.png")
            reloaded = await other.reload()  # a GET: no new code asked again
            assert reloaded is not None
            assert (reloaded.request.method, reloaded.status) == ("GET", 200)
            await expect(other.locator("#state")).to_contain_text("elivered")
            await expect(other.locator("#problem")).to_have_count(0)
    finally:
        relay.stop()
    assert relay.audit_seq(transfer_id, "code-reissued") is None  # the relay gave none
    actions = [json.loads(line) for line in agent.audit().splitlines()]
    reissued = [a for a in actions if a["action"] == "code-reissued"]
    assert [(a["outcome"], a["who"], a["detail"]["transfer"]) for a in reissued] == [
        ("refused", NURSE, transfer_id)
    ]
    assert reissued[0]["detail"]["why"] == "moved-on"
