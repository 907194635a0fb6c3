"""The phone page in real Chromium beyond the happy path: revoking before and after
redemption, break-glass, zoom to 200 %, and a link that is incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from phone_harness import (
    CHROMIUM_ARGS,
    PHONE,
    decode_qr,
    no_horizontal_overflow,
    phone,
    push_study,
    redeem_request,
    require_chromium,
    snap,
    words_cut_in_two,
)
from playwright.async_api import Browser, Page, async_playwright, expect
from relay_harness import running_relay

from receiving_site.redeem import redeem
from site_agent.client import RelayClient, RelayRefused


async def _agree_as_patient(page: Page, name: str = "Jane Example") -> None:
    """Fill the form as the patient and press "Agree and share"."""
    await page.locator("#role-patient").check()
    await expect(page.locator("#relationship")).to_be_hidden()
    await page.locator("#name").fill(name)
    await page.locator("#consent").check()
    await page.locator("#authorize-button").click()


async def _authorize_as_patient(page: Page, name: str = "Jane Example") -> None:
    await _agree_as_patient(page, name)
    await expect(page.locator("#code")).to_be_visible()


@pytest.mark.asyncio
async def test_revoke_before_redemption_stops_the_code(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await _authorize_as_patient(page)
            await expect(page.locator("#timeline")).to_contain_text(
                "Authorized by Jane Example, the patient"
            )
            await page.locator("#revoke-button").click()
            await expect(page.locator("#revoke-confirm")).to_be_visible()
            await expect(page.locator("#revoke-question")).to_contain_text("cannot be undone")
            await page.locator("#revoke-no").click()  # changing one's mind changes nothing
            await expect(page.locator("#revoke-confirm")).to_be_hidden()
            await page.locator("#revoke-button").click()
            await snap(page, "10-revoke-confirm.png")
            await page.locator("#revoke-yes").click()
            await expect(page.locator("#state-text")).to_contain_text("was cancelled")
            await expect(page.locator("#timeline")).to_contain_text("Cancelled from this phone on")
            await expect(page.locator("#code")).to_be_hidden()
            await expect(page.locator("#revoke")).to_be_hidden()
            await snap(page, "11-revoked.png")
            await page.reload()
            await expect(page.locator("#state-text")).to_contain_text("was cancelled")
            # This tab remembers that it cancelled; the relay knows the patient did.
            await expect(page.locator("#timeline")).to_contain_text("Cancelled from this phone on")
        async with phone(browser) as (_, other):
            await other.goto(ready.authorization_url)
            await expect(other.locator("#timeline")).to_contain_text("Cancelled by the patient on")
        with pytest.raises(RelayRefused) as refusal:
            await redeem(redeem_request(relay, tmp_path, ready.code), lambda _: None)
        assert refusal.value.code == "revoked"  # the right code is told the family cancelled
        async with RelayClient(relay.url, relay.sender_credential) as er:
            assert (await er.status(ready.transfer_id))["state"] == "revoked"


@pytest.mark.asyncio
async def test_keeping_the_transfer_by_keyboard_leaves_focus_on_cancel(
    tmp_path: Path, browser: Browser
) -> None:
    """With a keyboard (or a switch, or a screen reader), "No, keep it" closes the question and
    leaves focus on "Cancel this transfer", not lost at the top of the page."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await _authorize_as_patient(page)
            await page.locator("#revoke-button").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#revoke-no")).to_be_focused()
            await page.keyboard.press("Enter")
            await expect(page.locator("#revoke-confirm")).to_be_hidden()
            await expect(page.locator("#revoke-button")).to_be_focused()
            await snap(page, "14-kept-by-keyboard.png")


@pytest.mark.asyncio
async def test_a_cancel_that_could_not_reach_the_relay_can_be_tried_again(
    tmp_path: Path, browser: Browser
) -> None:
    """The phone loses its connection as the family presses "Yes, cancel the transfer": the page
    says the relay could not be reached, and "Cancel this transfer" is there to try again."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (context, page):
            await page.goto(ready.authorization_url)
            await _authorize_as_patient(page)
            await page.locator("#revoke-button").click()
            await context.set_offline(True)
            await page.locator("#revoke-yes").click()
            result = page.locator("#revoke-result")
            await expect(result).to_contain_text("The relay could not be reached")
            await expect(page.locator("#revoke-button")).to_be_visible()
            await expect(page.locator("#revoke-button")).to_be_focused()
            await snap(page, "13-revoke-offline.png")
            await context.set_offline(False)
            await page.locator("#revoke-button").click()
            await expect(result).to_be_hidden()
            await page.locator("#revoke-yes").click()
            await expect(page.locator("#state-text")).to_contain_text("was cancelled")
        async with RelayClient(relay.url, relay.sender_credential) as er:
            assert (await er.status(ready.transfer_id))["state"] == "revoked"


@pytest.mark.asyncio
async def test_revoke_after_redemption_is_refused_in_plain_words(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await _authorize_as_patient(page)
            # The trauma center takes it while the phone still shows the code.
            await redeem(redeem_request(relay, tmp_path, ready.code), lambda _: None)
            await page.locator("#revoke-button").click()
            await page.locator("#revoke-yes").click()
            message = "The trauma center has already taken the images"
            await expect(page.locator("#state-text")).to_contain_text(message)
            await expect(page.locator("#state-text")).to_contain_text("can no longer be cancelled")
            await expect(page.locator("#timeline")).to_contain_text("Taken by County Level I")
            await expect(page.locator("#revoke")).to_be_hidden()
            await snap(page, "12-revoke-refused.png")
        async with RelayClient(relay.url, relay.sender_credential) as er:
            assert (await er.status(ready.transfer_id))["state"] == "delivered"


@pytest.mark.asyncio
async def test_break_glass_is_shown_on_the_phone(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(
            relay,
            tmp_path,
            break_glass_reason="Unconscious after a car crash; no family reachable yet.",
            clinician="Dr. Rivera",
        )
        assert ready.break_glass
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await expect(page.locator("#break-glass")).to_be_visible()
            await expect(page.locator("#break-glass")).to_contain_text("break-glass")
            await expect(page.locator("#timeline")).to_contain_text(
                "Authorized by a doctor in an emergency (break-glass)"
            )
            await expect(page.locator("#authorize")).to_be_hidden()  # nothing left to agree to
            await expect(page.locator("#code")).to_be_visible()
            assert decode_qr(await page.locator("#qr").screenshot()) == [ready.capability]
            await snap(page, "20-break-glass.png")
        result = await redeem(redeem_request(relay, tmp_path, ready.code), lambda _: None)
        assert result.break_glass
        async with RelayClient(relay.url, relay.sender_credential) as er:
            status = await er.status(ready.transfer_id)
        assert status["break_glass"] is True
        assert status["authorized_by"] == "break_glass"


@pytest.mark.asyncio
async def test_the_page_refreshing_itself_leaves_the_cancel_question_open(
    tmp_path: Path, browser: Browser
) -> None:
    """Reading "Cancel the transfer? ..." and choosing who cancels takes time: the page's
    refresh every 30 s leaves the question open and the choice made."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(
            relay,
            tmp_path,
            break_glass_reason="Unconscious after a car crash; no family reachable yet.",
            clinician="Dr. Rivera",
        )
        async with phone(browser) as (_, page):
            await page.clock.install()
            await page.goto(ready.authorization_url)
            await page.locator("#revoke-button").click()
            await expect(page.locator("#revoke-who")).to_be_visible()
            await page.locator("#revoke-role-family").check()
            async with page.expect_response("**/api/v1/phone/status"):
                await page.clock.run_for(31_000)
            await expect(page.locator("#revoke-confirm")).to_be_visible()
            await expect(page.locator("#revoke-role-family")).to_be_checked()
            await expect(page.locator("#revoke-button")).to_be_hidden()
            await snap(page, "21-revoke-question-after-refresh.png")
            await page.locator("#revoke-yes").click()
            await expect(page.locator("#state-text")).to_contain_text("was cancelled")
        async with RelayClient(relay.url, relay.sender_credential) as er:
            status = await er.status(ready.transfer_id)
        assert status["revoked_by"] == "family"


async def _zoomed_views(page: Page, url: str, prefix: str) -> None:
    await page.goto(url)
    await expect(page.locator("#authorize")).to_be_visible()
    await page.locator("#role-family").check()
    await expect(page.locator("#relationship")).to_be_visible()
    assert await no_horizontal_overflow(page)
    await snap(page, f"{prefix}-form.png")
    await page.locator("#relationship").select_option("parent")
    await page.locator("#name").fill("Maximiliana Featherstonehaugh-Cholmondeley")
    await page.locator("#consent").check()
    await page.locator("#authorize-button").click()
    await expect(page.locator("#code")).to_be_visible()
    assert await no_horizontal_overflow(page)
    await snap(page, f"{prefix}-code.png")


@pytest.mark.asyncio
async def test_readable_at_200_percent_zoom(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        # Page zoom 200 % on a 360 x 640 phone lays out like a 180 x 320 viewport.
        first, _ = await push_study(relay, tmp_path / "one")
        half = {"width": PHONE["width"] // 2, "height": PHONE["height"] // 2}
        async with phone(browser, viewport=half, device_scale_factor=4) as (_, page):
            await _zoomed_views(page, first.authorization_url, "30-zoom-200")

        # Text zoom 200 % (the phone's font size setting) on the full 360 x 640 screen.
        second, _ = await push_study(relay, tmp_path / "two")
        async with phone(browser) as (context, page):
            await context.add_init_script(
                "document.addEventListener('DOMContentLoaded', () => {"
                " document.documentElement.style.fontSize = '200%'; })"
            )
            await _zoomed_views(page, second.authorization_url, "31-text-zoom-200")
            size = await page.evaluate(
                "() => getComputedStyle(document.querySelector('#code-text')).fontSize"
            )
            assert float(size.removesuffix("px")) >= 60  # 2 rem at a 32 px root

            # Every control is a large touch target.
            for selector in ("#revoke-button", "#language"):
                box = await page.locator(selector).bounding_box()
                assert box is not None
                assert box["height"] >= 44


@pytest.mark.asyncio
async def test_no_word_of_the_form_is_cut_in_two_at_200_percent_zoom(
    tmp_path: Path, browser: Browser
) -> None:
    """At 200 % zoom the consent sentence and the choices are read whole: no word is cut
    across two lines ("I agree that St. Mary' s Emer gency Depar tment share s ...")."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        half = {"width": PHONE["width"] // 2, "height": PHONE["height"] // 2}
        zooms = {
            "page-en": {"viewport": half, "device_scale_factor": 4},
            "page-es": {"viewport": half, "device_scale_factor": 4, "locale": "es-ES"},
            "text-en": {},
        }
        for zoom, options in zooms.items():
            async with phone(browser, **options) as (context, page):
                if zoom.startswith("text"):
                    await context.add_init_script(
                        "document.addEventListener('DOMContentLoaded', () => {"
                        " document.documentElement.style.fontSize = '200%'; })"
                    )
                await page.goto(ready.authorization_url)
                await expect(page.locator("#authorize")).to_be_visible()
                await page.locator("#role-family").check()
                await expect(page.locator("#consent-text")).not_to_be_empty()
                assert await words_cut_in_two(page, "#authorize") == [], zoom
                assert await no_horizontal_overflow(page), zoom
                await snap(page, f"32-zoom-200-{zoom}-form.png")


@pytest.mark.asyncio
async def test_no_word_of_the_code_page_is_cut_in_two_at_200_percent_zoom(
    tmp_path: Path, browser: Browser
) -> None:
    """After agreeing, at 200 % zoom in Spanish (its words are longer), the timeline and the
    cancel question's buttons are read whole: not "(representa nte" or "No, mantenerl o"."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        half = {"width": PHONE["width"] // 2, "height": PHONE["height"] // 2}
        options = {"viewport": half, "device_scale_factor": 4, "locale": "es-ES"}
        async with phone(browser, **options) as (_, page):
            await page.goto(ready.authorization_url)
            await page.locator("#role-family").check()
            await page.locator("#relationship").select_option("healthcare_proxy")
            await page.locator("#name").fill("Ana Ejemplo")
            await page.locator("#consent").check()
            await page.locator("#authorize-button").click()
            await expect(page.locator("#code")).to_be_visible()
            await page.locator("#revoke-button").click()
            await expect(page.locator("#revoke-confirm")).to_be_visible()
            assert await words_cut_in_two(page, "main") == []
            assert await no_horizontal_overflow(page)
            await snap(page, "33-zoom-200-es-code.png")


@pytest.mark.asyncio
async def test_touch_targets_and_labels(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await page.locator("#role-family").check()
            for selector in (
                "label[for=role-patient]",
                "label[for=role-family]",
                "#relationship",
                "#name",
                "label[for=consent]",
                "#authorize-button",
            ):
                box = await page.locator(selector).bounding_box()
                assert box is not None, selector
                assert box["height"] >= 44, selector
            unlabeled = await page.evaluate(
                "() => [...document.querySelectorAll('input, select')]"
                ".filter(e => !(e.labels && e.labels.length)).map(e => e.id)"
            )
            assert unlabeled == []


def _spoken(code: str) -> str:
    """The code as a screen reader reads it: symbol by symbol, a pause between groups."""
    return ", ".join(" ".join(group) for group in code.split("-"))


@pytest.mark.asyncio
async def test_a_screen_reader_reads_the_code_in_english_and_spanish(
    tmp_path: Path, browser: Browser
) -> None:
    """The code after agreeing is in the accessibility tree as its spoken form, symbol by
    symbol, in the language shown; its grouped letters are not read a second time. (An
    aria-label on the paragraph was not: a paragraph takes no name, and screen readers skip
    it.)"""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await _authorize_as_patient(page)
            code = page.locator("#code")
            await expect(code).to_match_aria_snapshot(f"- paragraph: 'Code: {_spoken(ready.code)}'")
            first_group = ready.code.split("-")[0]
            assert first_group not in await code.aria_snapshot()
            await page.locator("#language").click()
            await expect(code).to_match_aria_snapshot(
                f"- paragraph: 'Código: {_spoken(ready.code)}'"
            )


@pytest.mark.asyncio
async def test_an_incomplete_link_explains_itself(tmp_path: Path, browser: Browser) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        token_only = ready.authorization_url.rsplit(".", 1)[0]
        async with phone(browser) as (_, page):
            await page.goto(token_only)
            await expect(page.locator("#problem")).to_be_visible()
            await expect(page.locator("#problem-text")).to_contain_text("This link is incomplete")
            await expect(page.locator("#authorize")).to_be_hidden()
            # A wrong key cannot open what was sealed for the phone.
            await page.goto(ready.authorization_url[:-4] + "AAAA")
            await expect(page.locator("#problem-text")).to_contain_text("does not fit")
            await snap(page, "40-bad-link.png")


@pytest.mark.asyncio
async def test_an_agreement_recorded_while_the_page_lost_the_relay_says_so(
    tmp_path: Path, browser: Browser
) -> None:
    """The relay records "Agree and share", then the phone's connection drops before the page
    reads the new state: the page says the agreement was recorded, not "Nothing has been
    shared yet" above the form, and "Check again" brings the code."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await expect(page.locator("#authorize")).to_be_visible()
            status = "**/api/v1/phone/status"
            await page.route(status, lambda route: route.abort("internetdisconnected"))
            await _agree_as_patient(page)
            state = page.locator("#state-text")
            await expect(state).to_contain_text("Your agreement was recorded")
            await expect(state).not_to_contain_text("Nothing has been shared yet")
            await expect(page.locator("#authorize")).to_be_hidden()
            await expect(page.locator("#refresh")).to_be_visible()
            await expect(page.locator("#state-heading")).to_be_focused()
            await snap(page, "43-agreed-then-out-of-reach.png")
            await page.unroute(status)
            await page.locator("#refresh").click()
            await expect(page.locator("#code")).to_be_visible()
            await expect(page.locator("#problem")).to_be_hidden()
        async with RelayClient(relay.url, relay.sender_credential) as er:
            assert (await er.status(ready.transfer_id))["state"] == "authorized"


@pytest.mark.asyncio
async def test_a_link_opened_while_the_relay_is_out_of_reach_can_be_tried_again(
    tmp_path: Path, browser: Browser
) -> None:
    """The page loads but the relay cannot be reached for the transfer (the phone's connection
    drops): "try again" comes with "Check again", which shows the transfer once it can."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            status = "**/api/v1/phone/status"
            await page.route(status, lambda route: route.abort("internetdisconnected"))
            await page.goto(ready.authorization_url)
            await expect(page.locator("#problem-text")).to_contain_text(
                "The relay could not be reached"
            )
            await expect(page.locator("#refresh")).to_be_visible()
            await snap(page, "42-opened-offline.png")
            await page.unroute(status)
            await page.locator("#refresh").click()
            await expect(page.locator("#problem")).to_be_hidden()
            await expect(page.locator("#authorize")).to_be_visible()


# What a browser that blocks site data does: every use of sessionStorage throws.
BLOCKED_STORAGE = """
Object.defineProperty(window, "sessionStorage", {
  get() { throw new DOMException("The operation is insecure.", "SecurityError"); },
});
"""


@pytest.mark.asyncio
async def test_a_phone_that_blocks_site_data_can_still_agree(
    tmp_path: Path, browser: Browser
) -> None:
    """A phone whose browser blocks site data (storage throws): the page opens from the link
    and the family can agree, instead of staying on "Loading…"; a reload, which has no link
    left in the address bar, asks for the link again."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (context, page):
            await context.add_init_script(BLOCKED_STORAGE)
            await page.goto(ready.authorization_url)
            await expect(page.locator("#authorize")).to_be_visible()
            assert "#" not in page.url  # the secret left the address bar all the same
            await _authorize_as_patient(page)
            await snap(page, "44-site-data-blocked-agreed.png")
            await page.reload()
            await expect(page.locator("#problem-text")).to_contain_text("This link is incomplete")


STORAGE_REFUSED = "(() => { try { sessionStorage; return 'kept' } catch (e) { return e.name } })()"


def _profile_blocking_site_data(directory: Path) -> Path:
    """A Chromium profile with "Don't allow sites to save data" (cookies and storage) chosen,
    as a family member's browser may have it."""
    (directory / "Default").mkdir(parents=True)
    preferences = {"profile": {"default_content_setting_values": {"cookies": 2}}}
    (directory / "Default" / "Preferences").write_text(json.dumps(preferences))
    return directory


@pytest.mark.asyncio
async def test_a_browser_that_refuses_cookies_can_still_agree_and_cancel(tmp_path: Path) -> None:
    """Chromium set to keep no site data (no cookies, storage throws): the page loads the
    transfer, the family agrees and sees the code, and can cancel; before, every request was
    refused as coming from an out-of-date page, so nobody could agree from such a phone."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with async_playwright() as p:
            context = await p.chromium.launch_persistent_context(
                str(_profile_blocking_site_data(tmp_path / "profile")),
                executable_path=require_chromium(),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
            )
            try:
                page = await context.new_page()
                await page.goto(ready.authorization_url)
                assert await context.cookies() == []  # the relay's cookie was refused
                assert "SecurityError" in await page.evaluate(STORAGE_REFUSED)
                await expect(page.locator("#authorize")).to_be_visible()
                await _authorize_as_patient(page)
                await snap(page, "45-cookies-refused-agreed.png")
                await page.locator("#revoke-button").click()
                await page.locator("#revoke-yes").click()
                await expect(page.locator("#state-text")).to_contain_text("was cancelled")
            finally:
                await context.close()


@pytest.mark.asyncio
async def test_a_throttled_phone_is_told_how_long_to_wait(tmp_path: Path, browser: Browser) -> None:
    """After links that lead nowhere from the same network (a guesser on the hospital's Wi-Fi),
    the family's own link is refused for the throttle's window: the page says so and for how
    long, not "try again in a minute"."""
    async with running_relay(tmp_path / "relay", guess_limit_address=1) as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with (
            aiohttp.ClientSession() as http,
            http.post(relay.url + "/api/v1/authorizations", json={"token": "A" * 48}) as r,
        ):
            assert r.status == 404  # counted against this address
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            text = page.locator("#problem-text")
            await expect(text).to_contain_text("Too many links that lead nowhere")
            await expect(text).to_contain_text("Try again in 15 minutes")
            await expect(page.locator("#authorize")).to_be_hidden()


@pytest.mark.asyncio
async def test_agreeing_after_the_er_cancelled_shows_where_things_stand(
    tmp_path: Path, browser: Browser
) -> None:
    """The family fills the form while the emergency department cancels the transfer: pressing
    "Agree and share" is refused, and the page then says who cancelled and what to do, with no
    form left to send and no "Nothing has been shared yet ... decide" above it."""
    async with running_relay(tmp_path / "relay") as relay:
        ready, _ = await push_study(relay, tmp_path)
        async with phone(browser) as (_, page):
            await page.goto(ready.authorization_url)
            await expect(page.locator("#authorize")).to_be_visible()
            async with RelayClient(relay.url, relay.sender_credential) as er:
                await er.revoke(ready.transfer_id)
            await _agree_as_patient(page)
            state = page.locator("#state-text")
            await expect(state).to_contain_text("The emergency department cancelled this transfer")
            await expect(state).not_to_contain_text("Nothing has been shared yet")
            await expect(page.locator("#authorize")).to_be_hidden()
            await expect(page.locator("#state-heading")).to_be_focused()
            await snap(page, "41-agree-after-er-cancelled.png")
