"""The trauma console with JavaScript turned off, against real peers: a live import's page
refreshes itself (a meta refresh), and those refreshes are not new accesses in the audit log,
while a person opening the page again is one."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_browsing import snap, workstation
from e2e.conftest import fresh_relay
from e2e.harness import E2ERelay
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, expect
from test_trauma_console import WAIT_MS, _file_as_new_record, _open_with_code, _pushed
from trauma_harness import ReceivingAgent, configured_agent, pacs_paused_at_first_image

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

relay = fresh_relay  # a relay process of each test's own


def _views(agent: ReceivingAgent, transfer_id: str) -> int:
    viewed = agent.audited("transfer-viewed")
    return sum(1 for r in viewed if r["detail"] == {"transfer": transfer_id, "page": "imports"})


async def test_a_live_import_refreshing_itself_is_not_a_new_view_each_time(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    files, _, pushed = _pushed(relay, tmp_path, seed=67, slices=(300, 100))
    transfer = pushed["transfer_id"]
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser, java_script_enabled=False) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _file_as_new_record(page, "MRN-901")
            # The PACS stops answering once it holds some images: the import stays live.
            async with pacs_paused_at_first_image(orthanc, WAIT_MS):
                await expect(page.locator("#progress-text")).to_contain_text(
                    f"of {len(files)} in the PACS", timeout=WAIT_MS
                )
                before = _views(agent, transfer)
                assert before >= 1  # the page the import's button led to
                for _ in range(2):  # the page's own refreshes
                    await page.wait_for_event("load", timeout=WAIT_MS)
                assert _views(agent, transfer) == before
                assert page.url == f"{agent.url}/imports/{transfer}?refreshed"
                await expect(page.locator("#progress-text")).to_be_visible()
                await snap(page, "trauma-import-without-script.png")
                # A person opening it again (from the list, a bookmark) is an access.
                await page.goto(f"{agent.url}/imports/{transfer}")
                assert _views(agent, transfer) == before + 1
            await expect(page.locator("#result")).to_contain_text(
                f"Imported {len(files)} verified images", timeout=WAIT_MS
            )
    finally:
        agent.stop()
