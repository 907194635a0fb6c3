"""Acceptance, in headless Chromium at 1366 x 768: a PDF report travels with the images. The
nurse adds a PDF on the study's page (the same deposit `trauma-relay sender report` makes); what
is not a PDF, or is too large, is refused with a plain sentence and nothing is added; the study
then lists the report as one more series; the study is sent, and `trauma-relay redeem` stores
the report in the trauma center's Orthanc with the PDF's bytes unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, agent_holding
from console_browsing import fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay, pacs_address
from e2e.test_report import ENCAPSULATED_PDF, PDF
from er_transfer_page import authorize_from_the_page, send_anyway
from inbox_harness import make_multi_series_study
from peers.orthanc import OrthancServer
from playwright.async_api import Browser, Page, expect

from sending_site.report import MAX_REPORT_BYTES

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms


async def _add(page: Page, path: Path) -> None:
    await page.get_by_label("A report can travel with the images").set_input_files(path)
    await page.get_by_role("button", name="Add the report").click()


async def _authorized_and_uploaded(page: Page, relay: E2ERelay) -> str:
    """On the new transfer's page: its code, once the family authorized and all is uploaded."""
    await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
    code = (await page.locator("#code").inner_text()).strip()
    await authorize_from_the_page(page, relay.url)
    await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
    return code


async def _redeemed(
    relay: E2ERelay, code: str, tmp_path: Path, orthanc: OrthancServer, images: int
) -> None:
    redeemed = await asyncio.to_thread(
        relay.redeem, code, workdir=tmp_path, pacs=pacs_address(orthanc)
    )
    assert redeemed.ok().json()["instances"] == images


async def test_a_pdf_report_added_in_the_console_reaches_the_trauma_center(
    browser: Browser, orthanc: OrthancServer, tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=9393, patient_name="ROE^RICHARD")
    images = [path for files in study.values() for path in files]
    (tmp_path / "report.pdf").write_bytes(PDF)
    (tmp_path / "scan.pdf").write_bytes(b"GIF89a" + bytes(100))
    (tmp_path / "huge.pdf").write_bytes(b"%PDF-1.4\n" + bytes(MAX_REPORT_BYTES))
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="ROE, RICHARD").click()
            series = page.locator("#series tbody tr")
            await expect(series).to_have_count(len(study))

            await _add(page, tmp_path / "scan.pdf")
            await expect(page.locator("#problem")).to_contain_text("That file is not a PDF")
            assert await fits_the_screen(page)
            await snap(page, "er-report-not-a-pdf.png")
            await _add(page, tmp_path / "huge.pdf")
            await expect(page.locator("#problem")).to_contain_text("That PDF is", timeout=SLOW)
            await expect(page.locator("#problem")).to_contain_text("Save a smaller PDF")
            await expect(series).to_have_count(len(study))  # nothing was added

            await _add(page, tmp_path / "report.pdf")
            await expect(page.locator("#notice")).to_contain_text("The report was added")
            await expect(series).to_have_count(len(study) + 1)
            assert await fits_the_screen(page)
            await snap(page, "er-report-added.png")

            await send_anyway(page)
            code = await _authorized_and_uploaded(page, relay)
        await _redeemed(relay, code, tmp_path, orthanc, len(images) + 1)
    finally:
        relay.stop()

    reports = [
        i
        for i in orthanc.instances()
        if orthanc.instance_tags(i)["SOPClassUID"] == ENCAPSULATED_PDF
    ]
    (report,) = reports
    pdf = orthanc.get(f"/instances/{report}/pdf")
    assert pdf[: len(PDF)] == PDF
    assert pdf[len(PDF) :] in (b"", b"\x00")  # at most the DICOM pad byte
    assert len(orthanc.instances()) == len(images) + 1
    actions = [json.loads(line)["action"] for line in agent.audit().splitlines()]
    assert actions.count("report-refused") == 2
    assert actions.count("report-added") == 1


async def test_a_report_added_after_the_images_went_says_so_and_goes_with_them_again(
    browser: Browser, orthanc: OrthancServer, tmp_path: Path
) -> None:
    """The report comes after the images were sent: the page does not promise it goes with
    them; it names the transfer that went without it, and sending the study again as a new
    transfer carries the images and the report."""
    study = make_multi_series_study(tmp_path / "study", seed=9494, patient_name="ROE^RICHARD")
    images = [path for files in study.values() for path in files]
    (tmp_path / "report.pdf").write_bytes(PDF)
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        holding = agent_holding(
            tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
        )
        async with holding as agent, workstation(browser) as page:
            await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
            await page.get_by_role("link", name="ROE, RICHARD").click()
            study_page = page.url
            await send_anyway(page)
            await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
            first = page.url.rsplit("/", 1)[1]
            await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)

            await page.goto(study_page)
            await _add(page, tmp_path / "report.pdf")
            notice = page.locator("#notice")
            await expect(notice).to_contain_text("the images were already sent without it")
            await expect(notice).to_contain_text(f"(transfer {first})")
            await snap(page, "er-report-added-after.png")

            await send_anyway(page)
            await page.get_by_role("button", name="Send as a new transfer").click(timeout=SLOW)
            code = await _authorized_and_uploaded(page, relay)
            assert page.url.rsplit("/", 1)[1] != first
        await _redeemed(relay, code, tmp_path, orthanc, len(images) + 1)
    finally:
        relay.stop()
    tags = [orthanc.instance_tags(i)["SOPClassUID"] for i in orthanc.instances()]
    assert tags.count(ENCAPSULATED_PDF) == 1
