"""Helpers for the browser tests: Debian's Chromium driven by Playwright at a phone's viewport,
against a real relay in-process (same event loop), with the relay's access log captured.

Playwright never downloads a browser here (`playwright install` is not run): it launches
`/usr/bin/chromium`. Without it the tests skip on a developer's machine and fail under CI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from aiohttp import web
from peers import running_under_ci
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page
from relay_harness import RECEIVER, Relay, register_sites

from receiving_site.redeem import RedeemRequest
from relay import config as relay_config
from relay.app import make_app
from sending_site import journal
from sending_site.push import PushRequest, Ready, push
from sending_site.synthetic import make_ct_study

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 640}
# The walkthrough's phone (390 x 844), in English in Chicago and in Spanish in Madrid.
WALKTHROUGH = {"viewport": {"width": 390, "height": 844}}
ENGLISH = {**WALKTHROUGH, "locale": "en-US", "timezone_id": "America/Chicago"}
SPANISH = {**WALKTHROUGH, "locale": "es-ES", "timezone_id": "Europe/Madrid"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ACCESS_LOG = "aiohttp.access"


def require_chromium() -> str:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} is not installed (Debian package chromium)"
    if running_under_ci():
        pytest.fail(f"{message}; CI must have it", pytrace=False)
    pytest.skip(message)


def _unexpected(kind: str, text: str) -> bool:
    """Console errors a test must not see: script errors and CSP refusals. Chromium also logs
    every 4xx answer to fetch(), and every request of a phone a test took offline; the page
    handles those, and the tests check what it shows."""
    expected = ("the server responded with a status of 4", "net::ERR_INTERNET_DISCONNECTED")
    return kind == "error" and not any(e in text for e in expected)


@asynccontextmanager
async def phone(browser: Browser, **options: Any) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """A phone-sized page (360 x 640 CSS pixels, touch) in its own browser context."""
    settings: dict[str, Any] = {
        "viewport": PHONE,
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
        **options,
    }
    context = await browser.new_context(**settings)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if _unexpected(m.type, m.text) else None)
    try:
        yield context, page
    finally:
        await context.close()
    assert not errors, errors  # no script errors, no CSP violations


async def snap(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


def decode_qr(png: bytes) -> list[str]:
    """Every QR symbol zxing-cpp finds in a PNG."""
    image = Image.open(BytesIO(png)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(image)]


async def no_horizontal_overflow(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "() => document.documentElement.scrollWidth <= window.innerWidth"
            " && document.body.scrollWidth <= window.innerWidth"
        )
    )


async def words_cut_in_two(page: Page, selector: str) -> list[str]:
    """The words shown inside `selector` that a line break cuts in two (a word's pieces on
    different lines): at 200 % zoom a sentence cut like "Depar tment share s" is not readable."""
    return list(
        await page.evaluate(
            """(selector) => {
                const cut = [];
                const root = document.querySelector(selector);
                const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
                for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                    for (const word of n.data.matchAll(/\\S+/g)) {
                        const range = document.createRange();
                        range.setStart(n, word.index);
                        range.setEnd(n, word.index + word[0].length);
                        const lines = new Set(
                            [...range.getClientRects()]
                                .filter((r) => r.width > 0)
                                .map((r) => Math.round(r.top)),
                        );
                        if (lines.size > 1) cut.push(word[0]);
                    }
                }
                return cut;
            }""",
            selector,
        )
    )


@asynccontextmanager
async def logged_relay(data_dir: Path, **overrides: object) -> AsyncIterator[Relay]:
    """Like `relay_harness.running_relay`, but with aiohttp's access log on (to the
    `aiohttp.access` logger, which `caplog` captures) so tests can search what the relay logs."""
    sending, receiving = await register_sites(data_dir)
    config = relay_config.load(data_dir, "127.0.0.1:0", environ={}, **overrides)
    app = make_app(config, sweep=False)
    runner = web.AppRunner(app, access_log=logging.getLogger(ACCESS_LOG))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Relay(f"http://127.0.0.1:{port}", data_dir, sending, receiving, app)
    finally:
        await runner.cleanup()


async def push_study(
    relay: Relay, root: Path, *, instances: int = 3, **request: Any
) -> tuple[Ready, journal.TransferJournal]:
    """Push a synthetic CT study; returns the `Ready` event and the sender's journal."""
    study = root / "study"
    if not study.exists():
        make_ct_study(study, instances)
    events: list[object] = []
    state_dir = root / "er"
    await push(
        PushRequest(
            paths=[study],
            relay=relay.url,
            recipient=RECEIVER,
            credential=relay.sender_credential,
            state_dir=state_dir,
            **request,
        ),
        events.append,
    )
    ready = next(e for e in events if isinstance(e, Ready))
    return ready, journal.load(state_dir, ready.transfer_id)


def redeem_request(relay: Relay, root: Path, secret: str) -> RedeemRequest:
    """The trauma center's redemption of `secret` into a folder (no PACS), state under `root`."""
    return RedeemRequest(
        relay=relay.url,
        credential=relay.receiver_credential,
        state_dir=root / "tc",
        secret=secret,
        out=root / "out",
    )
