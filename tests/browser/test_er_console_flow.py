"""Acceptance, in headless Chromium at 1366 x 768: the ER console from sign-in to a delivered
receipt. DCMTK storescu sends a multi-series study to the running agent (`trauma-relay sender
--config FILE`), and one image of another patient under the same study (a mix-up at the
scanner), which the agent refuses; the nurse finds the study among the recent studies, marked
with the image of another patient refused, reads on its page that that image is not sent and
what to do, acknowledges the completeness warnings, picks the trauma center and sends it; the
family authorizes with the link from the page's QR; the trauma center redeems the code with
`trauma-relay redeem` into its Orthanc; the page follows by itself until it shows the
receipt. The refused image never reaches it."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from agent_harness import NURSE, NURSE_PASSWORD, AgentProcess, agent_holding
from console_browsing import expect_signed_in_as, fits_the_screen, sign_in, snap, workstation
from e2e.harness import E2ERelay, assert_identical_in_orthanc, pacs_address, post_json
from er_transfer_page import send_anyway
from inbox_harness import make_multi_series_study
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from phone_harness import decode_qr
from playwright.async_api import Browser, Page, expect

from sending_site.synthetic import make_ct_study
from transfer_codes.phone import split_link

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]

SLOW = 120_000  # ms: waits for the relay, the upload and the redeem


async def _qr_text(page: Page, selector: str) -> str:
    """What the QR image on the page says (decoded from the image itself, by zxing-cpp)."""
    source = await page.locator(selector).get_attribute("src")
    assert source
    assert source.startswith("data:image/png;base64,")
    found = decode_qr(base64.b64decode(source.split(",", 1)[1]))
    assert len(found) == 1, found
    return found[0]


async def _send_again(page: Page) -> str:
    """The trauma center asks for the delivered study again: sending it from its page stops at
    the delivered transfer, in the console's words, and the nurse sends it as a new transfer.
    Returns the new transfer's code."""
    await page.get_by_role("link", name="Recent studies").click()
    await page.get_by_role("link", name="ROE, RICHARD").click()
    await send_anyway(page)
    problem = page.locator("#problem")
    await expect(problem).to_contain_text("already delivered to County Trauma", timeout=SLOW)
    words = await problem.inner_text()
    assert "send it as a new transfer (the button below)" in words
    assert "command" not in words
    assert "--" not in words
    await expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    assert await fits_the_screen(page)
    await snap(page, "er-send-again-delivered.png")
    await page.get_by_role("button", name="Send as a new transfer").click()
    await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
    await expect(page.locator("#state")).to_contain_text("Awaiting authorization", timeout=SLOW)
    return (await page.locator("#code").inner_text()).strip()


def _audit(agent: AgentProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in agent.audit().splitlines()]


async def test_from_sign_in_to_a_delivered_receipt(
    browser: Browser, orthanc: OrthancServer, tmp_path: Path
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        await _flow(browser, relay, orthanc, tmp_path)
    finally:
        relay.stop()


async def _flow(browser: Browser, relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=9090, patient_name="ROE^RICHARD")
    sent = [path for files in study.values() for path in files]
    holding = agent_holding(
        tmp_path / "agent", relay.url, relay.sender_credential, tmp_path / "study"
    )
    # One more image of the study, naming another patient: refused by the agent.
    make_ct_study(tmp_path / "other", 1, seed=9090, patient_name="DOE^JOHN", series_number=4)
    async with holding as agent, workstation(browser) as page:
        refused = await asyncio.to_thread(
            storescu, agent.dicom_port, [tmp_path / "other"], called_ae_title=agent.ae_title
        )
        assert refused.returncode != 0
        await sign_in(page, agent.url, NURSE, NURSE_PASSWORD)
        await expect_signed_in_as(page, NURSE)
        row = page.locator("#studies tbody tr").filter(has_text="ROE, RICHARD")
        await expect(row).to_contain_text("20 in 3 series")
        await expect(row).to_contain_text("1 image of another patient refused")
        assert await fits_the_screen(page)
        await snap(page, "er-recent-studies.png")

        await page.get_by_label("Find by patient name").fill("roe")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("#studies tbody tr")).to_have_count(1)
        await page.get_by_role("link", name="ROE, RICHARD").click()

        # The refused image is said first, in plain words, without whom it named.
        warnings = page.locator("#warnings li")
        await expect(warnings.first).to_have_text(
            "1 image that came for this study was refused because it carries another patient's "
            "name, record number or birth date (it came from STORESCU). It is not sent with "
            "this study. Ask radiology to check the study on the scanner or in the PACS; once "
            "put right and sent to this agent again, it is added here."
        )
        await expect(page.locator("#refused")).to_have_text(
            "1 image of another patient refused, not sent"
        )
        assert "JOHN" not in await page.content()
        assert await fits_the_screen(page)
        await snap(page, "er-study-refused.png")
        # No PACS is set: the counts cannot be checked, so staff must say "send anyway".
        await expect(page.locator("#warnings")).to_contain_text("could not be checked")
        await page.get_by_label("Trauma center").select_option(label="County Trauma")
        assert await fits_the_screen(page)
        await snap(page, "er-study.png")
        await page.get_by_role("button", name="Send anyway").click()
        await expect(page.locator("#problem")).to_contain_text("Tick the box")
        await send_anyway(page)

        await expect(page.locator("#code")).to_be_visible(timeout=SLOW)
        await expect(page.locator("#state")).to_contain_text("Awaiting authorization", timeout=SLOW)
        assert "/transfers/" in page.url
        link = await _qr_text(page, "#link-qr")
        token, _ = split_link(link)
        assert token not in page.url
        code = (await page.locator("#code").inner_text()).strip()
        assert code not in page.url
        assert (await _qr_text(page, "#code-qr")).startswith("TR1")
        assert await fits_the_screen(page)
        await snap(page, "er-transfer-waiting.png")

        # The family's phone authorizes with the link from the QR.
        answer = await asyncio.to_thread(
            post_json, relay.url + "/api/v1/authorizations", {"token": token}
        )
        assert answer["state"] == "authorized", answer
        await expect(page.locator("#state")).to_contain_text("Authorized by", timeout=SLOW)
        await expect(page.locator("#progress")).to_have_text("Upload complete.", timeout=SLOW)
        await snap(page, "er-transfer-authorized.png")

        redeemed = await asyncio.to_thread(
            relay.redeem, code, workdir=tmp_path, pacs=pacs_address(orthanc)
        )
        assert redeemed.ok().json()["instances"] == len(sent)
        await expect(page.locator("#receipt")).to_contain_text(f"{len(sent)} images", timeout=SLOW)
        await expect(page.locator("#state")).to_contain_text("Delivered")
        assert await fits_the_screen(page)
        await snap(page, "er-transfer-delivered.png")
        await page.get_by_role("link", name="Transfers").click()
        await expect(page.locator("#transfers tbody tr")).to_contain_text(
            f"{len(sent)} images into the trauma center's PACS"
        )
        assert await fits_the_screen(page)
        await snap(page, "er-transfers.png")
        new_code = await _send_again(page)
        assert new_code != code
        # Its transfer exists: were the agent started again, the job resumes it, and does not
        # replace it in turn.
        jobs = [json.loads(p.read_text()) for p in (agent.state / "sending" / "jobs").iterdir()]
        assert len(jobs) == 2
        assert [j["replace"] for j in jobs] == [False, False]
        assert sorted(j["replaceable"] for j in jobs) == [False, False]

    assert_identical_in_orthanc(orthanc, sent)
    actions = _audit(agent)
    # The DICOM node's associations are in the same audit log: the study kept, the image of
    # another patient refused.
    received = [a["detail"] for a in actions if a["action"] == "images-received"]
    assert sum(d["kept"] for d in received) == len(sent)  # type: ignore[index]
    assert sum(d["refused"] for d in received) == 1  # type: ignore[index]
    acknowledged = [a for a in actions if a["action"] == "completeness-acknowledged"]
    assert len(acknowledged) == 2  # the first send and the second
    detail = acknowledged[0]["detail"]
    assert isinstance(detail, dict)
    assert detail["choice"] == "send anyway"
    assert any("could not be checked" in w for w in detail["warnings"])
    assert any("was refused" in w for w in detail["warnings"])
    started = [a for a in actions if a["action"] == "transfer-started"]
    assert len(started) == 3  # sent, sent again (refused: delivered), sent as a new transfer
    assert [bool(a["detail"].get("replace")) for a in started] == [False, False, True]  # type: ignore[union-attr]
    everything = agent.log() + agent.audit()
    assert code not in everything
    assert token not in everything
