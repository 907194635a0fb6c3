"""A push the ER console started that stops at a refusal trying again cannot cure, in headless
Chromium at 1366 x 768 against the running agent and a real relay: the family declined the
earlier transfer on their phone, or the trauma center is no longer on the relay. The job's page
says why and what to do instead, and offers no "Try again"; a retry posted from a page left open
from before is refused, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess, agent_holding
from console_browsing import fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay, run_cli
from er_transfer_page import decline_from_the_page, send_anyway
from markupsafe import escape
from playwright.async_api import Browser, Page, expect
from relay_harness import RECEIVER

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay and the upload


def _audit(agent: AgentProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in agent.audit().splitlines()]


def _jobs(agent: AgentProcess) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in (agent.state / "sending" / "jobs").iterdir()]


async def _stopped_without_try_again(page: Page, *words: str) -> None:
    """The job's page says why it stopped, offers neither "Try again" nor "Send as a new
    transfer", and leads back to the recent studies."""
    problem = page.locator("#problem")
    for said in words:
        await expect(problem).to_contain_text(said, timeout=SLOW)
    assert "/jobs/" in page.url
    await expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    await expect(page.get_by_role("button", name="Send as a new transfer")).to_have_count(0)
    await expect(page.get_by_role("link", name="Back to recent studies")).to_be_visible()
    assert await fits_the_screen(page)


async def _retry_from_a_stale_page(page: Page, agent: AgentProcess) -> str:
    """What a "Try again" form left open from before posts for this job: refused (409), with
    the job's sentence still there. Returns the answer's body."""
    token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    stale = await page.context.request.post(
        f"{page.url}/retry", form={"csrf_token": token or ""}, headers={"Origin": agent.url}
    )
    body = await stale.text()
    assert stale.status == 409, body
    assert "Not tried again" in body
    return body


async def test_a_refusal_trying_again_cannot_cure_offers_no_try_again(
    browser: Browser, tmp_path: Path
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "study", 3, seed=4141, patient_name="LOVELACE^ADA")
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="LOVELACE, ADA").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            await decline_from_the_page(page, relay.url)

            # Sent again, the push stops at the transfer the family declined, before any new
            # one exists: trying again would only send what they said no to as a new transfer.
            await page.get_by_role("link", name="Recent studies").click()
            await page.get_by_role("link", name="LOVELACE, ADA").click()
            await send_anyway(page)
            await _stopped_without_try_again(
                page, "family declined on their phone", "let them know", "send the study again"
            )
            await snap(page, "er-job-declined.png")
            said = await page.locator("#problem").inner_text()
            body = await _retry_from_a_stale_page(page, agent)
            assert str(escape(said)) in body  # nothing lost: the same sentence
            await page.reload()
            await expect(page.locator("#problem")).to_have_text(said)
            assert await asyncio.to_thread(relay.transfer_count) == 1

            # The trauma center is taken off the relay while its name is still on the study's
            # page. The relay says so as it says "no such trauma center" (the console says it may
            # be disabled); its operator may enable it again (`site enable`), so trying again is
            # offered, and then works.
            await page.get_by_role("link", name="Back to recent studies").click()
            await page.get_by_role("link", name="LOVELACE, ADA").click()
            await page.get_by_label("Trauma center").select_option(label="County Trauma")
            args = ["site", "disable", RECEIVER, "--data", str(relay.data_dir)]
            await asyncio.to_thread(lambda: run_cli(args, cwd=tmp_path).ok())
            await page.get_by_label("I have read the warnings").check()
            await page.get_by_role("button", name="Send anyway").click()
            await expect(page.locator("#problem")).to_contain_text(
                "The trauma center chosen is not on the relay just now", timeout=SLOW
            )
            await expect(page.locator("#problem")).not_to_contain_text("directory")
            args = ["site", "enable", RECEIVER, "--data", str(relay.data_dir)]
            await asyncio.to_thread(lambda: run_cli(args, cwd=tmp_path).ok())
            await page.get_by_role("button", name="Try again").click()
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            assert await asyncio.to_thread(relay.transfer_count) == 2

        jobs = _jobs(agent)
        assert len(jobs) == 3
        assert sorted(bool(j["ended"]) for j in jobs) == [True, True, True]
        started = [a for a in _audit(agent) if a["action"] == "transfer-started"]
        assert [a["outcome"] for a in started] == [
            "success",
            "success",
            "refused",
            "success",
            "success",
        ]
    finally:
        relay.stop()
