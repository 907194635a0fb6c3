"""For the ER console's browser tests: what the family's phone does with the authorization link
in a transfer page's QR."""

from __future__ import annotations

import asyncio
import base64

from e2e.harness import post_json
from phone_harness import decode_qr
from playwright.async_api import Page

from transfer_codes.phone import split_link


async def _link_of_the_page(page: Page) -> str:
    """The authorization link in the page's QR, decoded from the image (zxing-cpp)."""
    source = await page.locator("#link-qr").get_attribute("src")
    assert source is not None
    assert source.startswith("data:image/png;base64,")
    (link,) = decode_qr(base64.b64decode(source.split(",", 1)[1]))
    return str(link)


async def authorize_from_the_page(page: Page, relay_url: str) -> None:
    """Decode the page's authorization QR (zxing-cpp) and authorize with its link."""
    token, _ = split_link(await _link_of_the_page(page))
    answer = await asyncio.to_thread(
        post_json, relay_url + "/api/v1/authorizations", {"token": token}
    )
    assert answer["state"] == "authorized", answer


async def decline_from_the_page(page: Page, relay_url: str) -> None:
    """The family opens the link in the page's QR and says "Don't share", as its phone page
    posts it (with the page's CSRF cookie and header)."""
    token, _ = split_link(await _link_of_the_page(page))
    phone_page = {"Cookie": "tr_csrf=phone-page", "X-CSRF-Token": "phone-page"}
    answer = await asyncio.to_thread(
        post_json,
        relay_url + "/api/v1/phone/decline",
        {"token": token, "role": "family"},
        phone_page,
    )
    assert (answer["state"], answer["revoked_by"], answer["declined"]) == (
        "revoked",
        "family",
        True,
    ), answer


async def send_anyway(page: Page, center: str = "County Trauma") -> None:
    """On a study's page with warnings: pick the trauma center, tick that the warnings were
    read, and send."""
    await page.get_by_label("Trauma center").select_option(label=center)
    await page.get_by_label("I have read the warnings").check()
    await page.get_by_role("button", name="Send anyway").click()
