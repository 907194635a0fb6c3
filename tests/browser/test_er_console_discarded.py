"""In headless Chromium: a study the trauma center discarded after review, as the ER console
shows it. The nurse sends a study from the console and the family authorizes; the trauma
center's PACS files the study's UIDs under another patient, so `trauma-relay redeem` holds it,
and a person discards it (`trauma-relay receiver holds discard`). The transfer's page, open all
along, reloads by itself and says so, without the upload's progress and with the way back to
the recent studies; sending the study again from its page makes a new transfer at once, with a
new code (it resumed the dead transfer before)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest
from agent_harness import NURSE, NURSE_PASSWORD, agent_holding
from console_browsing import fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay, pacs_address, run_cli
from er_transfer_page import authorize_from_the_page, send_anyway
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay, the upload and the redeem


def _filed_under_someone_else(orthanc: OrthancServer, files: list[Path], copies: Path) -> None:
    """The PACS already has these UIDs, under another patient."""
    copies.mkdir()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "ER-99999", "ROE^RICHARD"
        ds.save_as(copies / path.name)
        orthanc.post_json("/instances", (copies / path.name).read_bytes(), "application/dicom")


async def test_a_study_discarded_at_the_trauma_center_is_said_and_sent_again_as_new(
    browser: Browser, orthanc: OrthancServer, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 3, seed=4141)  # ER-12345, DOE^JANE
    _filed_under_someone_else(orthanc, files, tmp_path / "other")
    relay = E2ERelay(tmp_path / "relay").start()
    state = tmp_path / "tc-state"
    holding = agent_holding(
        tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
    )
    try:
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="DOE, JANE").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
            code = (await page.locator("#code").inner_text()).strip()
            transfer_url = page.url
            await authorize_from_the_page(page, relay.url)

            held = await asyncio.to_thread(
                run_cli,
                relay.redeem_args(state=state, pacs=pacs_address(orthanc)),
                cwd=tmp_path,
                credential=relay.receiver_credential,
                stdin=code + "\n",
            )
            assert "held for review" in held.failed().message
            await expect(page.locator("#state")).to_contain_text("Redeemed", timeout=SLOW)
            transfer_id = transfer_url.rstrip("/").rsplit("/", 1)[1]
            settings = ["--set", f"state.folder={state}", "--set", f"relay.url={relay.url}"]
            discarded = await asyncio.to_thread(
                run_cli,
                ["receiver", "holds", "discard", transfer_id, *settings],
                cwd=tmp_path,
                credential=relay.receiver_credential,
            )
            assert "sees that it was discarded here" in discarded.ok().stdout

            # The page, open all along, reloads by itself.
            words = page.locator("#state")
            await expect(words).to_contain_text("Discarded at the trauma center", timeout=SLOW)
            await expect(words).to_contain_text(
                "Call them; if they still need the images, send the study again: it goes as a "
                "new transfer, with a new code"
            )
            await expect(page.locator("#code")).to_have_count(0)  # spent: not shown
            # Ended: no upload progress is shown, and the way back is offered, as on the
            # pages of other transfers that ended.
            await expect(page.locator("#meter")).to_have_count(0)
            await expect(page.locator("#progress")).to_have_count(0)
            back = page.get_by_role("link", name="Back to recent studies")
            await expect(back).to_be_visible()
            assert await fits_the_screen(page)
            await snap(page, "er-transfer-discarded.png")

            await back.click()
            await page.get_by_role("link", name="DOE, JANE").click()
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            assert page.url != transfer_url
            assert (await page.locator("#code").inner_text()).strip() != code
    finally:
        relay.stop()
