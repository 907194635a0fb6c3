"""The patient's phone, end to end in real Chromium at 360 x 640: open the link, read the
summary, authorize as family, carry the code and QR, then see the trauma center redeem and
deliver. The relay never sees the phone key or the plaintext summary."""

from __future__ import annotations

import base64
import logging
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from peers.storage_scp import RecordingStorageSCP
from phone_harness import decode_qr, logged_relay, phone, push_study, snap
from playwright.async_api import Browser, Request, expect

from receiving_site.pacs import PacsAddress
from receiving_site.redeem import RedeemRequest, redeem
from sending_site.synthetic import STUDY_DESCRIPTION
from site_agent.client import RelayClient
from transfer_codes.phone import decode_key, open_sealed

FAMILY_NAME = "Alexandra Quixote-Example"


def _what_was_sent(request: Request) -> str:
    """What the browser put on the wire for one request: URL without its fragment (browsers
    never send it), headers and body."""
    url = urlsplit(request.url)._replace(fragment="").geturl()
    return "\n".join([url, repr(request.headers), request.post_data or ""])


def _relay_bytes(data_dir: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(data_dir.rglob("*")) if p.is_file()]


@pytest.mark.asyncio
async def test_phone_authorizes_carries_code_and_sees_delivery(
    tmp_path: Path,
    browser: Browser,
    storage_scp: RecordingStorageSCP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sent: list[str] = []
    async with logged_relay(tmp_path / "relay") as relay:
        ready, record = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            page.on("request", lambda r: sent.append(_what_was_sent(r)))
            # 1. Open the link: the summary is decrypted on the phone.
            await page.goto(ready.authorization_url)
            await expect(page.locator("#s-study")).to_contain_text(STUDY_DESCRIPTION)
            await expect(page.locator("#s-study")).to_contain_text("(CT)")
            study_date = page.locator("#s-study time")  # worded by the phone's locale
            await expect(study_date).to_have_attribute("datetime", "2025-01-01")
            await expect(page.locator("#s-counts")).to_have_text("3 images in 1 series")
            await expect(page.locator("#s-sender")).to_have_text("St. Mary's Emergency Department")
            await expect(page.locator("#s-recipient")).to_have_text("County Level I Trauma Center")
            await expect(page.locator("#s-expires")).not_to_be_empty()
            await expect(page.locator("#authorize")).to_be_visible()
            # The link's secret is read, then gone from the address bar and the history.
            assert urlsplit(page.url).fragment == ""
            assert urlsplit(page.url).path == urlsplit(ready.authorization_url).path
            await expect(page.locator("#code")).to_be_hidden()
            await expect(page.locator("#break-glass")).to_be_hidden()
            await snap(page, "01-summary.png")

            # 2. A family member authorizes, with relationship, name and consent.
            await page.locator("#role-family").check()
            await expect(page.locator("#relationship")).to_be_visible()
            await page.locator("#relationship").select_option("spouse_or_partner")
            await page.locator("#name").fill(FAMILY_NAME)
            await page.locator("#consent").check()
            await snap(page, "02-consent.png")
            await page.locator("#authorize-button").click()

            # 3. The code, large and grouped, and its QR.
            await expect(page.locator("#code")).to_be_visible()
            groups = ready.code.split("-")
            await expect(page.locator("#code-text .group")).to_have_text(groups)
            await expect(page.locator("#revoke-button")).to_be_visible()
            await expect(page.locator("#timeline")).to_contain_text(
                f"Authorized by {FAMILY_NAME}, spouse or partner"
            )
            await snap(page, "03-code-and-qr.png")
            box = await page.locator("#qr").bounding_box()
            assert box is not None
            assert box["width"] >= 200
            assert await page.locator("#authorize-button").bounding_box() is None
            scanned = decode_qr(await page.locator("#qr").screenshot())
            assert scanned == [ready.capability]

            # 4. The trauma center redeems what it scanned off the phone, into its PACS.
            delivered = await redeem(
                RedeemRequest(
                    relay=relay.url,
                    credential=relay.receiver_credential,
                    state_dir=tmp_path / "tc",
                    secret=scanned[0],
                    pacs=PacsAddress(storage_scp.ae_title, "127.0.0.1", storage_scp.port),
                ),
                lambda _: None,
            )
            assert delivered.instances == 3
            assert len(storage_scp.received) == 3

            # 5. The same page, reloaded (its address no longer holds the link), shows the
            #    status.
            await page.reload()
            timeline = page.locator("#timeline")
            await expect(timeline).to_contain_text("Taken by County Level I Trauma Center on")
            await expect(timeline).to_contain_text("Delivered into their imaging system (PACS) on")
            await expect(timeline).to_contain_text("(3 images)")
            await expect(page.locator("#state-text")).to_contain_text("stored at the trauma")
            await expect(page.locator("#code")).to_be_hidden()
            await expect(page.locator("#revoke")).to_be_hidden()
            await expect(page.locator("#authorize")).to_be_hidden()
            # "Available until" no longer applies: the relay deletes delivered data sooner.
            await expect(page.locator("#s-expires")).to_be_hidden()
            await expect(page.locator("#s-expires-label")).to_be_hidden()
            await snap(page, "04-redeemed-and-delivered.png")

        async with RelayClient(relay.url, relay.sender_credential) as er:
            status = await er.status(ready.transfer_id)
        assert status["state"] == "delivered"
        assert status["authorized_by"] == "family"
        assert status["break_glass"] is False

    # Who authorized is recorded, sealed under the phone key: the sender can read it.
    db = sqlite3.connect(tmp_path / "relay" / "relay.sqlite3")
    try:
        (sealed,) = db.execute(
            "SELECT sealed FROM phone_blobs WHERE transfer_id = ? AND kind = 'authorizer'",
            (ready.transfer_id,),
        ).fetchone()
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY seq")]
    finally:
        db.close()
    who = open_sealed(decode_key(record.phone_key), "authorizer", bytes(sealed))
    assert who["role"] == "family"
    assert who["relationship"] == "spouse_or_partner"
    assert who["name"] == FAMILY_NAME
    assert str(who["consented_at"]).endswith("Z")
    assert "patient-authorization" in actions
    assert "phone-status-read" in actions
    assert "phone-documents-installed" in actions

    # The relay never held the phone key, the summary's text or who authorized, in its
    # storage or its logs (which did record the page requests).
    phone_key = record.phone_key
    secrets = {
        "study description": STUDY_DESCRIPTION.encode(),
        "phone key": phone_key.encode(),
        "phone key bytes": decode_key(phone_key),
        "phone key (base64)": base64.b64encode(decode_key(phone_key)),
        "authorizer name": FAMILY_NAME.encode(),
        "authorization token": record.authorization_token.encode(),
    }
    files = _relay_bytes(tmp_path / "relay")
    assert any(p.name == "relay.sqlite3" for p, _ in files)
    for label, needle in secrets.items():
        for path, content in files:
            assert needle not in content, f"{label} found in {path}"
    log_text = caplog.text
    assert "GET /authorize " in log_text
    assert "POST /api/v1/phone/status " in log_text
    for label, needle in secrets.items():
        assert needle.decode("latin-1") not in log_text, f"{label} found in the relay's log"

    # Nor did the phone send them: what it posted was the token and sealed blobs only.
    on_the_wire = "\n".join(sent)
    assert "/api/v1/authorizations" in on_the_wire
    assert record.authorization_token in on_the_wire
    for label in ("study description", "phone key", "phone key (base64)", "authorizer name"):
        assert secrets[label].decode() not in on_the_wire, f"the phone sent the {label}"
