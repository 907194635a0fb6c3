"""Acceptance, in headless Chromium at 1366 x 768: the ER console's upload starts at once and
goes on while images are still arriving (cut-through). DCMTK storescu sends one series of a
three-series study to the running agent (`trauma-relay sender --config FILE`), whose hospital
PACS (an Orthanc) holds the whole study; the nurse sends it from the console and the code is
issued while the study is still arriving; the transfer page says images are still arriving and
how many were sent so far; storescu sends the rest; the page shows the upload complete once the
study is (the PACS's counts match, nothing arrived for the stable age); `trauma-relay redeem`
delivers every instance exactly once. And "Stop waiting for more images" closes the transfer
marked incomplete, so the trauma center is told plainly and stores nothing; sent again once
every image has arrived, the study goes whole as a new transfer that replaces it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess
from console_browsing import fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay, assert_identical_in_orthanc, pacs_address
from er_transfer_page import authorize_from_the_page, send_anyway
from inbox_harness import make_multi_series_study
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, Page, expect

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay, the upload and the stable age


class Arranged:
    """A study the hospital PACS holds whole, and an agent that has received one series of it."""

    def __init__(
        self, tmp_path: Path, orthanc_factory: Callable[..., OrthancServer], seed: int
    ) -> None:
        first, *rest = make_multi_series_study(
            tmp_path / "study", seed=seed, patient_name="ROE^RICHARD"
        ).values()
        self.first = first
        self.rest = [path for files in rest for path in files]
        self.hospital = hospital = orthanc_factory()
        assert storescu(hospital.dicom_port, [tmp_path / "study"]).returncode == 0
        self.trauma_center = orthanc_factory()
        self.relay = E2ERelay(tmp_path / "relay").start()
        self.agent = AgentProcess(
            tmp_path / "agent",
            self.relay.url,
            self.relay.sender_credential,
            pacs=(hospital.ae_title, hospital.host, hospital.dicom_port),
        )
        self.tmp_path = tmp_path

    def send(self, files: list[Path]) -> None:
        run = storescu(self.agent.dicom_port, files, called_ae_title=self.agent.ae_title)
        assert run.returncode == 0, run.stderr

    def stop(self) -> None:
        self.agent.stop()
        self.relay.stop()

    async def start_sending(self, page: Page) -> str:
        """Sign in and send the study from its page; the code, once the transfer exists and
        the series that arrived is sent."""
        await asyncio.to_thread(self.agent.add_user)
        await asyncio.to_thread(self.agent.start)
        await asyncio.to_thread(self.send, self.first)
        await sign_in(page, self.agent.url, NURSE, NURSE_PASSWORD)
        await page.get_by_role("link", name="ROE, RICHARD").click()
        await expect(page.locator("#series tbody tr")).to_have_count(3)  # the PACS's too
        await send_anyway(page)
        await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
        sent = f"{len(self.first)} images sent so far"
        await expect(page.locator("#progress")).to_contain_text(sent, timeout=SLOW)
        return (await page.locator("#code").inner_text()).strip()


@asynccontextmanager
async def sending(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path, seed: int
) -> AsyncIterator[tuple[Arranged, Page, str]]:
    """The study sent from the console while it is still arriving: the arrangement, the
    transfer's page and the code; the agent and the relay stop on leaving."""
    it = Arranged(tmp_path, orthanc_factory, seed)
    try:
        async with workstation(browser) as page:
            yield it, page, await it.start_sending(page)
    finally:
        it.stop()


async def test_the_upload_follows_a_study_still_arriving(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    async with sending(browser, orthanc_factory, tmp_path, 9191) as (it, page, code):
        progress = page.locator("#progress")
        await expect(progress).to_contain_text("Images still arriving")
        stop = page.get_by_role("button", name="Stop waiting for more images")
        await expect(stop).to_be_visible()
        await expect(stop).to_have_accessible_description(
            re.compile("^Closes the transfer with what has arrived")
        )
        assert await fits_the_screen(page)
        await snap(page, "er-transfer-following.png")
        await authorize_from_the_page(page, it.relay.url)

        await asyncio.to_thread(it.send, it.rest)
        await expect(progress).to_have_text("Upload complete.", timeout=SLOW)
        await expect(page.locator("#stop-following")).to_have_count(0)
        assert await fits_the_screen(page)
        await snap(page, "er-transfer-followed-complete.png")
        sent = it.first + it.rest
        redeemed = await asyncio.to_thread(
            it.relay.redeem, code, workdir=tmp_path, pacs=pacs_address(it.trauma_center)
        )
        assert redeemed.ok().json()["instances"] == len(sent)
    assert_identical_in_orthanc(it.trauma_center, sent)  # every instance, exactly once


async def test_stop_waiting_sends_what_arrived_marked_incomplete(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    async with sending(browser, orthanc_factory, tmp_path, 9292) as (it, page, code):
        await authorize_from_the_page(page, it.relay.url)
        await page.get_by_role("button", name="Stop waiting for more images").click()
        await expect(page.locator("#notice")).to_contain_text("told the study is incomplete")
        await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
        await expect(page.locator("#incomplete")).to_be_visible()
        assert await fits_the_screen(page)
        await snap(page, "er-transfer-stopped-waiting.png")
        audit = [json.loads(line) for line in it.agent.audit().splitlines()]
        assert [a["action"] for a in audit].count("following-stopped") == 1
        redeemed = await asyncio.to_thread(
            it.relay.redeem, code, workdir=tmp_path, pacs=pacs_address(it.trauma_center)
        )
        refused = redeemed.failed()
        assert (
            f"The sending hospital stopped sending this study before all of it had arrived "
            f"(only {len(it.first)} images came), so it is incomplete. Nothing was stored."
            in refused.message
        )
        assert it.trauma_center.instances() == []

        # The rest arrives; sent again, the study goes whole as a new transfer that replaces
        # the incomplete one (not "its code still works": it never delivers).
        await asyncio.to_thread(it.send, it.rest)
        await page.get_by_role("link", name="Recent studies").click()
        await page.get_by_role("link", name="ROE, RICHARD").click()
        await page.get_by_label("Trauma center").select_option(label="County Trauma")
        if await page.get_by_label("I have read the warnings").count():
            await page.get_by_label("I have read the warnings").check()
        await page.locator("#send").click()
        await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
        new_code = (await page.locator("#code").inner_text()).strip()
        assert new_code != code
        await authorize_from_the_page(page, it.relay.url)
        await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
        sent = it.first + it.rest
        redeemed = await asyncio.to_thread(
            it.relay.redeem, new_code, workdir=tmp_path, pacs=pacs_address(it.trauma_center)
        )
        assert redeemed.ok().json()["instances"] == len(sent)
    assert_identical_in_orthanc(it.trauma_center, sent)


async def test_a_warning_that_came_after_the_page_was_read_is_shown_first(
    browser: Browser, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """What staff tick as read is what is recorded: the hospital PACS goes down while the study's
    page is open, so its counts can no longer be checked; sending then shows that warning to be
    read first. Images still arriving, or a series short of fewer images, ask nothing again."""
    it = Arranged(tmp_path, orthanc_factory, 9393)
    try:
        async with workstation(browser) as page:
            await asyncio.to_thread(it.agent.add_user)
            await asyncio.to_thread(it.agent.start)
            await asyncio.to_thread(it.send, it.first)
            await sign_in(page, it.agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="ROE, RICHARD").click()
            await expect(page.locator("#warnings")).to_contain_text("none of its")
            await expect(page.locator("#warnings")).not_to_contain_text("could not be checked")
            await asyncio.to_thread(it.hospital.stop)  # the page is not reloaded
            await send_anyway(page)
            await expect(page.locator("#problem")).to_contain_text("There is a new warning")
            await expect(page.locator("#warnings")).to_contain_text("could not be checked")
            audit = [json.loads(line) for line in it.agent.audit().splitlines()]
            assert [a["action"] for a in audit].count("completeness-acknowledged") == 0
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            audit = [json.loads(line) for line in it.agent.audit().splitlines()]
            (acknowledged,) = [a for a in audit if a["action"] == "completeness-acknowledged"]
            assert any("could not be checked" in w for w in acknowledged["detail"]["warnings"])
    finally:
        it.stop()
