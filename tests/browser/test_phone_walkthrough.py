"""The phone page against the usability walkthrough, in real Chromium at 390 x 844: why sharing
helps, English and Spanish (from the phone's languages and by a switch), what is left to do
after agreeing, marked invalid fields, a visible focus ring, no "Check again" while the page
refreshes itself, and one way of writing dates."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from phone_harness import ENGLISH, SPANISH, phone, push_study, redeem_request, snap
from playwright.async_api import Browser, Page, expect
from relay_harness import Relay, running_relay

from receiving_site.redeem import redeem
from relay import pages
from sending_site.push import Ready

TEXT: dict[str, dict[str, Any]] = json.loads(
    (Path(pages.__file__).parent / "authorize.text.json").read_text(encoding="utf-8")
)
SELF_REFRESH_MS = 31_000


@asynccontextmanager
async def _opened(
    root: Path, browser: Browser, options: dict[str, Any], *, fake_clock: bool = False
) -> AsyncIterator[tuple[Relay, Ready, Page]]:
    """A relay with a pushed study, and its authorization link open on a phone (with the
    phone's clock under the test's control if `fake_clock`)."""
    async with running_relay(root / "relay") as relay:
        ready, _ = await push_study(relay, root)
        async with phone(browser, **options) as (_, page):
            if fake_clock:
                await page.clock.install()
            await page.goto(ready.authorization_url)
            yield relay, ready, page


async def _delivered(relay: Relay, root: Path, code: str) -> None:
    """The trauma center takes the transfer into a folder (delivered, without a PACS)."""
    await redeem(redeem_request(relay, root, code), lambda _: None)


async def _agree_as_family(page: Page) -> None:
    await page.locator("#role-family").check()
    await page.locator("#relationship").select_option("spouse_or_partner")
    await page.locator("#name").fill("Ana Ejemplo")
    await page.locator("#consent").check()
    await page.locator("#authorize-button").click()
    await expect(page.locator("#code")).to_be_visible()


async def _untranslated(page: Page, language: str) -> list[str]:
    """Sentences of the other language found on the page (names from the relay aside)."""
    shown = await page.locator("main").inner_text()
    other = TEXT["en" if language == "es" else "es"]
    return [
        value
        for name, value in other.items()
        if isinstance(value, str)
        and "{" not in value
        and len(value) > 12
        and value != TEXT[language][name]
        and value in shown
    ]


@pytest.mark.asyncio
async def test_spanish_from_the_phone_language(tmp_path: Path, browser: Browser) -> None:
    async with _opened(tmp_path, browser, SPANISH, fake_clock=True) as (relay, ready, page):
        await expect(page.locator("html")).to_have_attribute("lang", "es")
        await expect(page.locator("h1")).to_have_text("Sus imágenes y el centro de trauma")
        await expect(page.locator("#why")).to_contain_text("menos radiación")
        await expect(page.locator("#state-text")).to_contain_text("no se ha compartido nada")
        await expect(page.locator("#s-counts")).to_have_text("3 imágenes en 1 serie")
        await expect(page.locator("#s-study time")).to_have_text("1 de enero de 2025")
        await expect(page.locator("#consent-text")).to_contain_text("Acepto que")
        await expect(page.locator("#language")).to_have_text("English")
        await expect(page.locator("#language")).to_have_attribute("lang", "en")
        assert await _untranslated(page, "es") == []
        await snap(page, "50-es-summary.png")

        await page.locator("#authorize-button").click()
        await expect(page.locator("#form-error")).to_have_text(TEXT["es"]["error.role"])
        await snap(page, "51-es-invalid.png")

        await _agree_as_family(page)
        await expect(page.locator("#next")).to_contain_text("No tiene que hacer nada más")
        await expect(page.locator("#next")).to_contain_text("hoja de traslado impresa")
        await expect(page.locator("#timeline")).to_contain_text(
            "Autorizado por Ana Ejemplo (cónyuge o pareja) el"
        )
        await expect(page).to_have_title("Código para el centro de trauma")
        assert await _untranslated(page, "es") == []
        await snap(page, "52-es-code.png")

        # The page refreshes itself: the news comes in Spanish too.
        await _delivered(relay, tmp_path, ready.code)
        await page.clock.fast_forward(SELF_REFRESH_MS)
        await expect(page.locator("#state-text")).to_contain_text("Las imágenes están guardadas")
        await expect(page.locator("#timeline")).to_contain_text("(3 imágenes)")
        assert await _untranslated(page, "es") == []
        await snap(page, "53-es-delivered.png")


@pytest.mark.asyncio
async def test_the_language_switch_works_by_keyboard_and_survives_a_reload(
    tmp_path: Path, browser: Browser
) -> None:
    async with _opened(tmp_path, browser, ENGLISH) as (_, ready, page):
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator("#state-text")).to_contain_text("Nothing has been shared")
        await page.keyboard.press("Tab")  # the switch comes first
        await expect(page.locator("#language")).to_be_focused()
        await expect(page.locator("#language")).to_have_text("Español")
        await page.keyboard.press("Enter")
        await expect(page.locator("html")).to_have_attribute("lang", "es")
        await expect(page.locator("#state-text")).to_contain_text("no se ha compartido nada")
        await expect(page.locator("#language")).to_be_focused()
        await expect(page.locator("#language")).to_have_text("English")
        await expect(page.locator("#s-study time")).to_have_text("1 de enero de 2025")
        assert await _untranslated(page, "es") == []

        await page.reload()
        await expect(page.locator("#state-text")).to_contain_text("no se ha compartido nada")
        await page.locator("#refresh").click()  # what the relay says next is Spanish too
        await expect(page.locator("#state-text")).to_contain_text("no se ha compartido nada")
        # The choice is not in the URL (nor is the link's secret, once read).
        assert page.url == ready.authorization_url.partition("#")[0]

        await page.locator("#language").focus()
        await page.keyboard.press("Space")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await page.reload()
        await expect(page.locator("#state-text")).to_contain_text("Nothing has been shared")
        assert await _untranslated(page, "en") == []


@pytest.mark.asyncio
async def test_english_walkthrough_invalid_fields_and_what_is_left_to_do(
    tmp_path: Path, browser: Browser
) -> None:
    async with _opened(tmp_path, browser, ENGLISH) as (_, _, page):
        why = page.locator("#why")
        await expect(why).to_be_visible()
        await expect(why).to_contain_text("before the patient arrives")
        await expect(why).to_contain_text("less radiation")
        await expect(page.locator("#refresh")).to_be_visible()  # nothing refreshes by itself
        await expect(page.locator("#auto-refresh")).to_be_hidden()
        await snap(page, "55-en-summary.png")

        # The page's fields: the role radios, the relationship, the name, the consent box.
        # Each submit finds the next field wrong; then that field is put right.
        steps = [
            (
                "role",
                ["#role-patient", "#role-family"],
                lambda: page.locator("#role-family").check(),
            ),
            (
                "relationship",
                ["#relationship"],
                lambda: page.locator("#relationship").select_option("parent"),
            ),
            ("name", ["#name"], lambda: page.locator("#name").fill("Jo Doe")),
            ("consent", ["#consent"], lambda: page.locator("#consent").check()),
        ]
        for field, invalid, put_right in steps:
            await page.locator("#authorize-button").click()
            error = TEXT["en"][f"error.{field}"]
            await expect(page.locator("#form-error")).to_have_text(error)
            await expect(page.locator(invalid[0])).to_be_focused()
            for selector in invalid:
                field_locator = page.locator(selector)
                await expect(field_locator).to_have_attribute("aria-invalid", "true")
                await expect(field_locator).to_have_attribute("aria-describedby", "form-error")
                await expect(field_locator).to_have_accessible_description(error)
            assert await page.locator("[aria-invalid]").count() == len(invalid)
            if field == "relationship":
                await snap(page, "56-en-invalid.png")
            await put_right()
        await page.locator("#authorize-button").click()

        await expect(page.locator("#code")).to_be_visible()
        next_steps = page.locator("#next")
        await expect(next_steps).to_contain_text("You have nothing more to do")
        await expect(next_steps).to_contain_text("printed transfer sheet")
        await expect(page.locator("#next-heading")).to_be_focused()
        assert await page.locator("[aria-invalid]").count() == 0
        # The page now refreshes itself: no button to do it by hand, a line saying so.
        await expect(page.locator("#refresh")).to_be_hidden()
        await expect(page.locator("#auto-refresh")).to_be_visible()
        await snap(page, "57-en-code.png")


def _channel(value: float) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _contrast(one: list[float], two: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (r, g, b in 0..255)."""
    lum = [
        0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b) for r, g, b in (one, two)
    ]
    bright, dark = max(lum), min(lum)
    return (bright + 0.05) / (dark + 0.05)


# For the focused element: its outline, and the first opaque background behind it (the colour
# on both sides of a ring drawn with an offset).
FOCUSED_RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const style = getComputedStyle(el);
  let behind = [255, 255, 255];
  for (let up = el.parentElement; up; up = up.parentElement) {
    const colour = rgb(getComputedStyle(up).backgroundColor);
    if (colour.length === 3 || colour[3] > 0) { behind = colour.slice(0, 3); break; }
  }
  return {
    id: el.id,
    style: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
    offset: parseFloat(style.outlineOffset),
    outline: rgb(style.outlineColor).slice(0, 3),
    own: rgb(style.backgroundColor),
    behind,
  };
}"""


async def _tab_through(page: Page) -> dict[str, float]:
    """Tab once round the page; for each element reached, its focus ring's contrast."""
    ratios: dict[str, float] = {}
    for _ in range(40):
        await page.keyboard.press("Tab")
        ring = await page.evaluate(FOCUSED_RING)
        if ring is None:  # past the last control; the next Tab starts at the top
            continue
        if ring["id"] in ratios:
            break
        assert ring["style"] != "none", ring
        assert ring["width"] >= 2, ring
        ratio = _contrast(ring["outline"], ring["behind"])
        if ring["offset"] <= 0 and len(ring["own"]) == 3:  # the ring touches the element itself
            ratio = min(ratio, _contrast(ring["outline"], ring["own"]))
        ratios[ring["id"]] = ratio
    return ratios


@pytest.mark.asyncio
async def test_focus_ring_contrast_on_every_control(tmp_path: Path, browser: Browser) -> None:
    async with _opened(tmp_path, browser, ENGLISH) as (_, _, page):
        await page.locator("#role-family").check()  # shows the relationship too
        ratios = await _tab_through(page)
        form = {"language", "role-family", "relationship", "name", "consent"}
        assert form | {"authorize-button", "refresh"} <= set(ratios), ratios
        await page.locator("#relationship").select_option("parent")
        await page.locator("#name").fill("Jo Doe")
        await page.locator("#consent").check()
        await page.locator("#authorize-button").click()
        await expect(page.locator("#code")).to_be_visible()
        ratios |= await _tab_through(page)
        await page.locator("#revoke-button").click()
        await page.locator("#revoke-no").focus()
        await snap(page, "60-en-focus-ring.png")
        ratios |= await _tab_through(page)
        assert {"revoke-button", "revoke-yes", "revoke-no"} <= set(ratios), ratios
        low = {name: round(r, 2) for name, r in ratios.items() if r < 3}
        assert low == {}, low


MONTHS_EN = "January|February|March|April|May|June|July|August|September|October|November|December"
MOMENT = {
    "en": re.compile(rf"^({MONTHS_EN}) \d{{1,2}}, \d{{4}} at \d{{1,2}}:\d{{2}}\s[AP]M C[SD]T$"),
    "es": re.compile(r"^\d{1,2} de [a-z]+ de \d{4}(,| a las) \d{1,2}:\d{2} CES?T$"),
}
STUDY_DAY = {"en": "January 1, 2025", "es": "1 de enero de 2025"}
DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}|\d{1,2}/\d{1,2}/\d{2,4}")
TEXT_WITHOUT_DATES = """() => {
  const copy = document.querySelector("main").cloneNode(true);
  copy.querySelectorAll("time, #code-text, #code-spoken").forEach((e) => e.remove());
  return copy.textContent;
}"""


@pytest.mark.asyncio
async def test_dates_are_written_one_way_with_their_time_zone(
    tmp_path: Path, browser: Browser
) -> None:
    async with _opened(tmp_path, browser, ENGLISH) as (relay, ready, agreeing):
        await _agree_as_family(agreeing)
        await _delivered(relay, tmp_path, ready.code)
        for language, options in (("en", ENGLISH), ("es", SPANISH)):
            # A fresh phone in each language, opening the link of the delivered transfer.
            async with phone(browser, **options) as (_, page):
                await page.goto(ready.authorization_url)
                await expect(page.locator("#timeline li")).to_have_count(3)
                await expect(page.locator("#refresh")).to_be_visible()  # delivered: no more news
                times = page.locator("main time")
                shown = await times.all_inner_texts()
                stamps = await times.evaluate_all("ts => ts.map((t) => t.dateTime)")
                # study date, authorized, taken, delivered (no expiry: delivered data goes sooner)
                assert len(shown) == 4, shown
                for text, stamp in zip(shown, stamps, strict=True):
                    if stamp == "2025-01-01":
                        assert text == STUDY_DAY[language]
                    else:
                        assert MOMENT[language].match(text), text
                assert not DATE_LIKE.search(await page.evaluate(TEXT_WITHOUT_DATES))
                await snap(page, f"{58 if language == 'en' else 59}-{language}-delivered.png")
