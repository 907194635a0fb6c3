"""How the ER console says amounts of time, in headless Chromium at 1366 x 768, against the
running agent and a real relay: a study still arriving says how long ago and how long to wait
in words a nurse would write ("1 minute", never "60 seconds" nor "1 seconds")."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess
from console_browsing import sign_in, snap, workstation
from e2e.harness import E2ERelay
from playwright.async_api import Browser, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

AGO = re.compile(r"Images were still arriving (less than a second|1 second|\d+ seconds) ago; ")


class _MinuteAgent(AgentProcess):
    """An agent that calls a study complete once nothing has arrived for a minute."""

    def write_config(self) -> None:
        super().write_config()
        self.config.write_text(
            self.config.read_text().replace('stable_age = "1s"', 'stable_age = "1m"')
        )


async def test_a_study_still_arriving_says_its_times_in_words(
    browser: Browser, tmp_path: Path
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    agent = _MinuteAgent(tmp_path / "agent", relay.url, relay.sender_credential)
    try:
        make_ct_study(tmp_path / "study", 3, seed=6161, patient_name="POE^EDGAR")
        await asyncio.to_thread(agent.add_user)
        await asyncio.to_thread(agent.start)
        await asyncio.to_thread(agent.receive, tmp_path / "study")
        async with workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="POE, EDGAR").click()
            warnings = page.locator("#warnings")
            await expect(warnings).to_contain_text("wait until none has arrived for 1 minute.")
            said = await warnings.inner_text()
            assert AGO.search(said), said
            assert not re.search(r"\b1 (seconds|minutes)\b", said), said
            await snap(page, "er-study-still-arriving.png")
    finally:
        await asyncio.to_thread(agent.stop)
        relay.stop()
