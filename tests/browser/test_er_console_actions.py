"""The ER console's actions on a transfer, in headless Chromium at 1366 x 768, against the
running agent and a real relay: break-glass (a vague reason is refused, saying what to write),
a new code (the old one stops), the printable transfer sheet, and revoke after a confirmation
step. Each is audited; the break-glass reason is sealed for the trauma center, not kept here."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, agent_holding
from console_browsing import fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay
from er_transfer_page import authorize_from_the_page, send_anyway
from playwright.async_api import Browser, Page, expect

from relay.lifecycle import MAX_FAILED_ATTEMPTS
from sending_site.synthetic import make_ct_study
from transfer_codes.codes import RedemptionCode

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms
REASON = "Unconscious after a fall, no family reachable."
SITE_PHONE = "+1 555 010 0199 ext 42"


async def _asked_once_more(page: Page, link: str, heading: str, shot: str, code: str) -> None:
    """`link` opens a page asking once more, naming the patient and the trauma center; going
    back from it changes nothing; then it is opened again, to say yes."""
    await page.get_by_role("link", name=link).click()
    await expect(page.get_by_role("heading")).to_have_text(heading)
    await expect(page.locator("#patient")).to_contain_text("POE, EDGAR")
    await expect(page.locator(".narrow")).to_contain_text("to County Trauma")
    await snap(page, f"er-transfer-{shot}-confirm.png")
    await page.get_by_role("link", name="No, go back").click()
    await expect(page.locator("#code")).to_have_text(code)
    await page.get_by_role("link", name=link).click()


def pdf_text(pdf: Path) -> str:
    """The PDF's text as poppler's pdftotext reads it, on one line."""
    run = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True)
    return " ".join(run.stdout.split())


async def test_break_glass_new_code_sheet_and_revoke(browser: Browser, tmp_path: Path) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 4, seed=3131, patient_name="POE^EDGAR")
        holding = agent_holding(
            tmp_path / "agent",
            relay.url,
            relay.sender_credential,
            tmp_path / "study",
            more_config=f'[sheet]\nsite_phone = "{SITE_PHONE}"\n',
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            first_code = (await page.locator("#code").inner_text()).strip()
            # Whose transfer this is, on the page and in the list (two may go to one center).
            await expect(page.locator("#patient")).to_contain_text("POE, EDGAR")

            await page.get_by_text("Nobody can consent? Break-glass").click()
            await page.get_by_label("Why nobody can consent").fill("unconscious")
            await page.get_by_label("Authorizing clinician").fill("Dr. Grey")
            await page.get_by_role("button", name="Authorize by break-glass").click()
            await expect(page.locator("#problem")).to_contain_text("must be a sentence")
            # The form stays open with what was typed, to be corrected rather than typed again.
            await expect(page.get_by_label("Why nobody can consent")).to_have_value("unconscious")
            await expect(page.get_by_label("Authorizing clinician")).to_have_value("Dr. Grey")
            await page.get_by_label("Why nobody can consent").fill("")
            await page.get_by_label("Authorizing clinician").fill("")
            await page.get_by_role("button", name="Authorize by break-glass").click()
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("must be a sentence")  # both said at once
            await expect(problem).to_contain_text("Enter the name of the clinician")
            assert "--" not in await problem.inner_text()
            await page.get_by_label("Why nobody can consent").fill(REASON)
            await page.get_by_label("Authorizing clinician").fill("Dr. Grey")
            await page.get_by_role("button", name="Authorize by break-glass").click()
            await expect(page.locator("#state")).to_contain_text("BREAK-GLASS")
            await expect(page.locator("#link-qr")).to_have_count(0)  # nothing to authorize
            await snap(page, "er-transfer-break-glass.png")

            # A new code stops the one travelling with the patient: asked once more.
            heading = "Give this transfer a new code?"
            await _asked_once_more(page, "Give a new code", heading, "reissue", first_code)
            await page.get_by_role("button", name="Yes, give a new code").click()
            await expect(page.locator("#notice")).to_contain_text("A new code was issued")
            new_code = (await page.locator("#code").inner_text()).strip()
            assert new_code != first_code
            assert await fits_the_screen(page)
            await snap(page, "er-transfer-new-code.png")

            token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
            assert token
            transfer_path = urlsplit(page.url).path
            sheet = await page.context.request.post(
                f"{agent.url}{transfer_path}/sheet",
                form={"csrf_token": token, "paper": "letter"},
                headers={"Origin": agent.url},
            )
            assert sheet.status == 200
            assert sheet.headers["content-type"] == "application/pdf"
            assert (await sheet.body()).startswith(b"%PDF")
            (tmp_path / "sheet.pdf").write_bytes(await sheet.body())
            assert SITE_PHONE in pdf_text(tmp_path / "sheet.pdf")  # the agent's setting

            await page.get_by_role("link", name="Transfers").click()
            row = page.locator("#transfers tbody tr").filter(has_text="POE, EDGAR")
            await expect(row).to_contain_text("County Trauma")
            await row.get_by_role("link").click()
            heading = "Revoke this transfer?"
            await _asked_once_more(page, "Revoke this transfer", heading, "revoke", new_code)
            await page.get_by_role("button", name="Yes, revoke it").click()
            await expect(page.locator("#notice")).to_contain_text("revoked")
            await expect(page.locator("#state")).to_contain_text("Revoked")
            await expect(page.locator("#code")).to_have_count(0)
            await expect(page.get_by_role("link", name="Give a new code")).to_have_count(0)
            await snap(page, "er-transfer-revoked.png")
            # A colleague's page, open from before: its "Give a new code" now meets a revoked
            # transfer, and says so with the console's way to go on, not the command line's.
            stale = await page.context.request.post(
                f"{agent.url}{transfer_path}/reissue",
                form={"csrf_token": token},
                headers={"Origin": agent.url},
            )
            assert stale.status == 400
            said = await stale.text()
            assert "so its code cannot be re-issued. Send the study again from its page" in said
            assert "trauma-relay" not in said  # neither push nor revoke: it was the button
            assert "was given up (revoked here)" in said
            # Its pages asking once more, opened again (the back button, a bookmark), no longer
            # ask: they lead to the transfer's page, which says it is revoked.
            for action in ("reissue", "revoke"):
                await page.goto(f"{agent.url}{transfer_path}/{action}")
                assert urlsplit(page.url).path == transfer_path
                await expect(page.locator("#state")).to_contain_text("Revoked")
                await expect(page.get_by_role("button", name=re.compile("^Yes"))).to_have_count(0)
            for secret in (first_code, new_code):
                assert secret not in page.url
    finally:
        relay.stop()

    # A revoked transfer's upload is never resumed (its study would go again, as a new one).
    jobs = [json.loads(p.read_text()) for p in (agent.state / "sending" / "jobs").glob("*.json")]
    assert [job["ended"] for job in jobs] == [True]
    actions = [json.loads(line) for line in agent.audit().splitlines()]
    done = [a["action"] for a in actions]
    succeeded = [a["action"] for a in actions if a["outcome"] == "success"]
    for action in ("break-glass", "code-reissued", "sheet-printed", "transfer-revoked"):
        assert succeeded.count(action) == 1, done
    # The colleague's stale "Give a new code" is audited as refused, with what refused it.
    (refused,) = [a for a in actions if a["outcome"] == "refused"]
    assert (refused["action"], refused["detail"]["why"]) == ("code-reissued", "TransferAbandoned")
    glass = next(a for a in actions if a["action"] == "break-glass")
    assert glass["detail"]["clinician"] == "Dr. Grey"
    # The pages asking once more name the patient: each view is an access, audited as such
    # (each was opened twice: once to go back, once to say yes).
    asked = [a["detail"].get("page") for a in actions if a["action"] == "transfer-viewed"]
    assert (asked.count("reissue"), asked.count("revoke")) == (2, 2), asked
    assert REASON not in agent.audit()
    for secret in (first_code, new_code):
        assert secret not in agent.log()
        assert secret not in agent.audit()


async def test_a_locked_code_is_not_shown_and_a_new_one_unlocks(
    browser: Browser, tmp_path: Path
) -> None:
    """Too many wrong codes lock the transfer: its page no longer shows or prints the dead code,
    says what happened in the console's words, and Give a new code brings a working one."""
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 3, seed=3232, patient_name="ROE^RICHARD")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="ROE, RICHARD").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            code = (await page.locator("#code").inner_text()).strip()
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            await authorize_from_the_page(page, relay.url)

            locator = RedemptionCode.parse(code).locator
            wrong = [RedemptionCode.generate(locator).grouped() for _ in range(MAX_FAILED_ATTEMPTS)]
            assert code not in wrong
            for n, guess in enumerate(wrong):
                work = tmp_path / f"attempt-{n}"
                work.mkdir()
                await asyncio.to_thread(
                    lambda g=guess, w=work: relay.redeem(g, workdir=w, out=w / "in").failed()
                )
            # The page follows by itself (its state changed).
            locked = page.locator("#state")
            await expect(locked).to_contain_text("Locked after too many wrong", timeout=SLOW)
            await expect(page.locator("#state")).to_contain_text("Give a new code to unlock it")
            await expect(page.locator("#locked")).to_be_visible()
            await expect(page.locator("#code")).to_have_count(0)
            await expect(page.locator("#print-sheet")).to_have_count(0)
            assert code not in await page.content()
            await snap(page, "er-transfer-locked.png")
            # A page printed from before the lock: no sheet of a code that no longer works.
            token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
            stale = await page.context.request.post(
                f"{page.url}/sheet",
                form={"csrf_token": token or "", "paper": "a4"},
                headers={"Origin": agent.url},
            )
            assert stale.status == 409
            assert "No sheet was printed" in await stale.text()

            await page.get_by_role("link", name="Give a new code").click()
            await page.get_by_role("button", name="Yes, give a new code").click()
            await expect(page.locator("#code")).to_be_visible()
            new_code = (await page.locator("#code").inner_text()).strip()
            assert new_code != code
            redeemed = await asyncio.to_thread(
                relay.redeem, new_code, workdir=tmp_path, out=tmp_path / "out"
            )
            assert redeemed.ok().json()["instances"] == 3
    finally:
        relay.stop()
