"""The phone page in real Chromium at 390 x 844: "Don't share" with its confirmation step, who
cancelled (this phone, the patient or family, the emergency department), and the hint that
identifies the patient without exposing them (initials, birth year, body regions)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from phone_harness import ENGLISH, SPANISH, phone, push_study, redeem_request, snap
from playwright.async_api import Browser, Page, expect
from relay_harness import Relay, running_relay

from receiving_site.redeem import redeem
from sending_site.journal import TransferJournal
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient, RelayRefused
from transfer_codes.codes import RedemptionCode
from transfer_codes.notes import seal_json
from transfer_codes.phone import AAD_PREFIX, decode_key, seal_code

SENDER = "St. Mary's Emergency Department"
RECIPIENT = "County Level I Trauma Center"


def _pan_scan(folder: Path) -> None:
    """Three series, one image each, whose Body Part Examined is the head, chest, abdomen."""
    for i, (path, part) in enumerate(
        zip(make_ct_study(folder, 3), ("ABDOMEN", "HEAD", "CHEST"), strict=True)
    ):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[f"series {i}"])
        ds.BodyPartExamined = part
        ds.save_as(path)


async def _sender_sees(relay: Relay, transfer_id: str) -> tuple[str, str | None, bool]:
    async with RelayClient(relay.url, relay.sender_credential) as er:
        status = await er.status(transfer_id)
    return status["state"], status["revoked_by"], status["declined"]


async def _code_refused(relay: Relay, root: Path, code: str, *, by_phone: bool = True) -> None:
    """The code unlocks nothing. The right code of a transfer the patient or family revoked on
    their phone is told so ("revoked"); one the sending hospital revoked gets the plain refusal."""
    with pytest.raises(RelayRefused) as refusal:
        await redeem(redeem_request(relay, root, code), lambda _: None)
    assert refusal.value.code == ("revoked" if by_phone else "code-not-accepted")


@pytest.mark.asyncio
async def test_dont_share_asks_to_confirm_then_the_er_sees_the_family_declined(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser, **ENGLISH) as (_, page):
            await page.goto(ready.authorization_url)
            # Below "Agree and share": secondary, but as large and as easy to find.
            await expect(page.locator("#decline-button")).to_have_text("Don't share")
            await expect(page.locator("#decline-button")).to_have_class("secondary")
            agree = await page.locator("#authorize-button").bounding_box()
            box = await page.locator("#decline-button").bounding_box()
            assert box is not None
            assert agree is not None
            assert box["height"] >= 44
            assert box["width"] == agree["width"]
            assert agree["y"] < box["y"]

            # Who says no is recorded, so the page asks first, as for agreeing.
            await page.locator("#decline-button").click()
            await expect(page.locator("#form-error")).to_contain_text("Choose who is deciding")
            await expect(page.locator("#role-patient")).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#role-patient")).to_be_focused()
            await expect(page.locator("#decline-confirm")).to_be_hidden()
            await snap(page, "71-dont-share-who.png")

            # The confirmation step; going back changes nothing.
            await page.locator("#role-family").check()
            await page.locator("#decline-button").click()
            question = page.locator("#decline-question")
            await expect(question).to_be_visible()
            await expect(question).to_be_focused()
            await expect(question).to_contain_text(f"{RECIPIENT} will not receive them")
            await expect(question).to_contain_text("cannot be undone")
            await expect(page.locator("#decline-button")).to_be_hidden()
            await expect(page.locator("#role-patient")).not_to_have_attribute(
                "aria-invalid", "true"
            )
            await snap(page, "72-dont-share-confirm.png")
            await page.locator("#decline-no").click()
            await expect(page.locator("#decline-confirm")).to_be_hidden()
            await expect(page.locator("#decline-button")).to_be_focused()
            assert await _sender_sees(relay, ready.transfer_id) == (
                "awaiting_authorization",
                None,
                False,
            )

            await page.locator("#decline-button").click()
            await page.locator("#decline-yes").click()
            state = page.locator("#state-text")
            await expect(state).to_contain_text("Nothing was shared.")
            await expect(state).to_contain_text(f"{RECIPIENT} will not receive these images")
            await expect(state).to_contain_text("the emergency department sees it")
            await expect(page.locator("#timeline")).to_contain_text("Declined from this phone on")
            await expect(page.locator("#state-heading")).to_be_focused()
            await expect(page.locator("#authorize")).to_be_hidden()
            await expect(page.locator("#code")).to_be_hidden()
            await expect(page.locator("#revoke")).to_be_hidden()
            await expect(page.locator("#why")).to_be_hidden()  # no arguing after a no
            await snap(page, "73-declined.png")
            await page.reload()  # this tab still knows it was this phone
            await expect(page.locator("#timeline")).to_contain_text("Declined from this phone on")

        # The ER sees that the family declined; the code is dead.
        assert await _sender_sees(relay, ready.transfer_id) == ("revoked", "family", True)
        await _code_refused(relay, tmp_path, ready.code)

        # Another phone, in Spanish, reads who declined.
        async with phone(browser, **SPANISH) as (_, other):
            await other.goto(ready.authorization_url)
            await expect(other.locator("#state-text")).to_contain_text("No se compartió nada.")
            await expect(other.locator("#timeline")).to_contain_text("Rechazado por un familiar el")
            await snap(other, "74-es-declined-elsewhere.png")


HINT = {
    "en": ("Patient", "J. D., born 1985", "Parts of the body scanned", "Head, Chest, Abdomen"),
    "es": (
        "Paciente",
        "J. D. (año de nacimiento: 1985)",
        "Partes del cuerpo estudiadas",
        "Cabeza, Tórax, Abdomen",
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("language", "options"), [("en", ENGLISH), ("es", SPANISH)])
async def test_the_hint_says_who_and_what_without_a_name(
    tmp_path: Path, browser: Browser, language: str, options: dict[str, object]
) -> None:
    _pan_scan(tmp_path / "study")
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser, **options) as (_, page):
            await page.goto(ready.authorization_url)
            patient_label, patient, regions_label, regions = HINT[language]
            await expect(page.locator("#s-patient-label")).to_have_text(patient_label)
            await expect(page.locator("#s-patient")).to_have_text(patient)
            await expect(page.locator("#s-regions-label")).to_have_text(regions_label)
            await expect(page.locator("#s-regions")).to_have_text(regions)
            assert "DOE" not in (await page.locator("main").inner_text()).upper()
            await snap(page, f"70-{language}-hint.png")
    # Sealed like the rest of the summary: the relay never held the hint in the clear.
    stored = b"".join(f.read_bytes() for f in (tmp_path / "relay").rglob("*") if f.is_file())
    for plain in (b"patient_initials", b"body_regions", b"J. D.", b"ABDOMEN"):
        assert plain not in stored


@pytest.mark.asyncio
async def test_a_summary_sealed_before_the_hint_still_opens(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, record = await push_study(relay, tmp_path)
        await _older_summary(relay, record)
        async with phone(browser, **ENGLISH) as (_, page):
            await page.goto(ready.authorization_url)
            await expect(page.locator("#s-counts")).to_have_text("3 images in 1 series")
            await expect(page.locator("#s-patient")).to_be_hidden()
            await expect(page.locator("#s-patient-label")).to_be_hidden()
            await expect(page.locator("#s-regions")).to_be_hidden()
            await expect(page.locator("#s-regions-label")).to_be_hidden()
            await expect(page.locator("#problem")).to_be_hidden()
            await snap(page, "76-older-summary.png")


async def _older_summary(relay: Relay, record: TransferJournal) -> None:
    """Seal the summary as a sending site did before the hint existed, and leave it instead."""
    key = decode_key(record.phone_key)
    body = {
        "sender": SENDER,
        "recipient": RECIPIENT,
        "study_descriptions": ["CT TRAUMA PANSCAN"],
        "modalities": ["CT"],
        "study_date": "2025-01-01",
        "series_count": 1,
        "image_count": 3,
        "expires_at": record.expires_at,
        "break_glass": False,
    }
    code = seal_code(key, RedemptionCode.parse(record.code).grouped(), record.capability)
    async with RelayClient(relay.url, relay.sender_credential) as er:
        await er.put_phone_documents(
            record.transfer_id, code, seal_json(key, AAD_PREFIX + b"summary", body)
        )


async def _agree(page: Page, role: str) -> None:
    await page.locator(f"#role-{role}").check()
    if role == "family":
        await page.locator("#relationship").select_option("parent")
    await page.locator("#name").fill("Sam Example")
    await page.locator("#consent").check()
    await page.locator("#authorize-button").click()
    await expect(page.locator("#code")).to_be_visible()


async def _cancel_here(page: Page) -> None:
    await page.locator("#revoke-button").click()
    await page.locator("#revoke-yes").click()
    await expect(page.locator("#timeline")).to_contain_text("Cancelled from this phone on")
    await expect(page.locator("#state-text")).to_contain_text("was cancelled")


@pytest.mark.asyncio
async def test_who_cancelled_is_said_on_every_phone(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        # 1. The patient agreed, then cancelled on their phone.
        by_patient, _ = await push_study(relay, tmp_path / "patient")
        async with phone(browser, **ENGLISH) as (_, page):
            await page.goto(by_patient.authorization_url)
            await _agree(page, "patient")
            await _cancel_here(page)
        # 2. Break-glass, then the family cancelled: the phone asks who is cancelling.
        by_family, _ = await push_study(
            relay,
            tmp_path / "family",
            break_glass_reason="Unconscious after a fall; no family reachable yet.",
            clinician="Dr. Rivera",
        )
        async with phone(browser, **ENGLISH) as (_, page):
            await page.goto(by_family.authorization_url)
            await page.locator("#revoke-button").click()
            await expect(page.locator("#revoke-who")).to_be_visible()
            await page.locator("#revoke-yes").click()
            await expect(page.locator("#revoke-result")).to_have_text(
                "Choose who is cancelling: the patient or a family member."
            )
            await expect(page.locator("#revoke-role-patient")).to_be_focused()
            await expect(page.locator("#revoke-role-patient")).to_have_attribute(
                "aria-describedby", "revoke-result"
            )
            await snap(page, "77-break-glass-who-cancels.png")
            await page.locator("#revoke-role-family").check()
            await page.locator("#revoke-yes").click()
            await expect(page.locator("#timeline")).to_contain_text("Cancelled from this phone on")
        # 3. The emergency department withdrew it.
        by_sender, _ = await push_study(relay, tmp_path / "sender")
        async with RelayClient(relay.url, relay.sender_credential) as er:
            await er.revoke(by_sender.transfer_id)

        assert await _sender_sees(relay, by_patient.transfer_id) == ("revoked", "patient", False)
        assert await _sender_sees(relay, by_family.transfer_id) == ("revoked", "family", False)
        assert await _sender_sees(relay, by_sender.transfer_id) == (
            "revoked",
            "sending_site",
            False,
        )

        # Another phone opening each link reads who it was.
        seen = [
            (by_patient, "Cancelled by the patient on", "was cancelled", "78-cancelled-patient"),
            (by_family, "Cancelled by a family member on", "was cancelled", "79-cancelled-family"),
            (
                by_sender,
                f"Cancelled by {SENDER} (the emergency department) on",
                "The emergency department cancelled this transfer",
                "80-cancelled-sender",
            ),
        ]
        for ready, line, state, shot in seen:
            async with phone(browser, **ENGLISH) as (_, other):
                await other.goto(ready.authorization_url)
                await expect(other.locator("#timeline")).to_contain_text(line)
                await expect(other.locator("#state-text")).to_contain_text(state)
                await snap(other, f"{shot}.png")
            await _code_refused(relay, tmp_path / shot, ready.code, by_phone=ready is not by_sender)
