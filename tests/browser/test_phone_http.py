"""The phone's HTTP edge without a browser: opening the link changes nothing, the page's
headers, CSRF refusals, and revocation through the API before and after redemption."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from phone_harness import push_study
from relay_harness import Relay, running_relay

from receiving_site.redeem import RedeemRequest, redeem
from relay.api.phone import ASSETS, CONTENT_SECURITY_POLICY
from sending_site.phone import token_from_link
from site_agent.client import RelayClient, RelayRefused


@pytest_asyncio.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(tmp_path / "relay") as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Cookies are handled by hand, so each test says exactly what it sends.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def _snapshot(data_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    db = sqlite3.connect(data_dir / "relay.sqlite3")
    try:
        dump = list(db.iterdump())
    finally:
        db.close()
    objects = sorted(
        (str(p.relative_to(data_dir)), p.stat().st_size)
        for p in (data_dir / "objects").rglob("*")
        if p.is_file()
    )
    return dump, objects


async def _page(http: aiohttp.ClientSession, relay: Relay) -> tuple[str, str]:
    """GET the page as a phone would; returns (cookie value, token embedded in the page)."""
    async with http.get(relay.url + "/authorize") as r:
        assert r.status == 200
        cookie = r.cookies["tr_csrf"].value
        html = await r.text()
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match is not None
    return cookie, match.group(1)


async def _post(
    http: aiohttp.ClientSession,
    relay: Relay,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    async with http.post(relay.url + path, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def _phone_headers(relay: Relay, cookie: str, token: str | None = None) -> dict[str, str]:
    return {
        "Cookie": f"tr_csrf={cookie}",
        "X-CSRF-Token": token if token is not None else cookie,
        "Origin": relay.url,
    }


@pytest.mark.asyncio
async def test_opening_the_link_changes_nothing(
    tmp_path: Path, relay: Relay, http: aiohttp.ClientSession
) -> None:
    ready, _ = await push_study(relay, tmp_path)
    before = _snapshot(relay.data_dir)
    for _ in range(3):
        async with http.get(ready.authorization_url) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert r.headers["Cache-Control"] == "no-store"
            cookie = r.cookies["tr_csrf"]
            assert cookie["samesite"] == "Strict"
            assert cookie["path"] == "/"
            assert cookie["httponly"]
            assert not cookie["secure"]  # plain http in tests; https sets Secure
    async with http.head(relay.url + "/authorize") as r:
        assert r.status == 200
    async with http.get(relay.url + "/authorize?preview=1", headers={"Cookie": "tr_csrf=abc"}) as r:
        assert r.status == 200
        assert 'content="abc"' in await r.text()  # an open tab's token is kept
    for asset in ASSETS:
        async with http.get(f"{relay.url}/pages/{asset}") as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    async with http.get(relay.url + "/pages/../relay.sqlite3") as r:
        assert r.status == 404
    assert _snapshot(relay.data_dir) == before


@pytest.mark.asyncio
async def test_page_loads_nothing_from_elsewhere(relay: Relay, http: aiohttp.ClientSession) -> None:
    async with http.get(relay.url + "/authorize") as r:
        html = await r.text()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references
    assert all(ref.startswith(("/pages/", "data:")) for ref in references), references
    for asset in ASSETS:
        async with http.get(f"{relay.url}/pages/{asset}") as r:
            text = await r.text()
        assert "://" not in text
        assert "@import" not in text
        assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", text)


@pytest.mark.asyncio
async def test_phone_posts_need_the_csrf_token(
    tmp_path: Path, relay: Relay, http: aiohttp.ClientSession
) -> None:
    ready, _ = await push_study(relay, tmp_path)
    token = token_from_link(ready.authorization_url)
    cookie, embedded = await _page(http, relay)
    assert embedded == cookie
    good = _phone_headers(relay, cookie)
    refused = {
        "no header": {"Cookie": f"tr_csrf={cookie}", "Origin": relay.url},
        "no cookie, no origin": {"X-CSRF-Token": cookie},
        "no cookie, no header": {"Origin": relay.url},
        "no cookie, other origin": {"X-CSRF-Token": cookie, "Origin": "https://evil.example"},
        "empty cookie": {"Cookie": "tr_csrf=", "X-CSRF-Token": cookie, "Origin": relay.url},
        "wrong token": _phone_headers(relay, cookie, "x" * len(cookie)),
        "other origin": {**good, "Origin": "https://evil.example"},
        "cross-site fetch": {**good, "Sec-Fetch-Site": "cross-site"},
    }
    for path in ("/api/v1/phone/status", "/api/v1/phone/revoke", "/api/v1/authorizations"):
        for why, headers in refused.items():
            status, problem = await _post(http, relay, path, {"token": token}, headers)
            assert status == 403, (path, why)
            assert problem["type"].endswith(":csrf"), (path, why)
            assert "Open the link again" in problem["detail"]
    status, document = await _post(http, relay, "/api/v1/phone/status", {"token": token}, good)
    assert status == 200
    assert document["state"] == "awaiting_authorization"  # nothing above changed anything
    assert document["code"] is None  # the code only once authorized
    assert document["summary"]

    # A browser that keeps no cookies sends its page's token and our origin, and is taken.
    kept_none = {"X-CSRF-Token": embedded, "Origin": relay.url, "Sec-Fetch-Site": "same-origin"}
    status, document = await _post(http, relay, "/api/v1/phone/status", {"token": token}, kept_none)
    assert status == 200
    assert document["state"] == "awaiting_authorization"

    status, problem = await _post(http, relay, "/api/v1/phone/status", {"token": "0" * 48}, good)
    assert status == 404
    assert "does not lead to a transfer" in problem["detail"]


@pytest.mark.asyncio
async def test_revoke_before_and_after_redemption(
    tmp_path: Path, relay: Relay, http: aiohttp.ClientSession
) -> None:
    cookie, _ = await _page(http, relay)
    headers = _phone_headers(relay, cookie)

    # Before: the phone revokes, and the code no longer redeems.
    first, _ = await push_study(relay, tmp_path / "one")
    token = token_from_link(first.authorization_url)
    status, _ = await _post(
        http,
        relay,
        "/api/v1/authorizations",
        {"token": token, "authorizer_role": "patient"},
        headers,
    )
    assert status == 200
    status, document = await _post(http, relay, "/api/v1/phone/revoke", {"token": token}, headers)
    assert status == 200
    assert document["state"] == "revoked"
    assert "cancelled" in document["explanation"]
    assert document["can_revoke"] is False
    with pytest.raises(RelayRefused) as refusal:
        await redeem(
            RedeemRequest(
                relay=relay.url,
                credential=relay.receiver_credential,
                state_dir=tmp_path / "tc",
                secret=first.code,
                out=tmp_path / "out",
            ),
            lambda _: None,
        )
    assert refusal.value.code == "revoked"  # the right code is told who cancelled it
    assert "cancelled by the patient or family" in refusal.value.detail

    # After: redemption has happened, so revoking is refused in plain words.
    second, _ = await push_study(relay, tmp_path / "two")
    token = token_from_link(second.authorization_url)
    await _post(http, relay, "/api/v1/authorizations", {"token": token}, headers)
    await redeem(
        RedeemRequest(
            relay=relay.url,
            credential=relay.receiver_credential,
            state_dir=tmp_path / "tc",
            secret=second.capability,
            out=tmp_path / "out",
        ),
        lambda _: None,
    )
    status, problem = await _post(http, relay, "/api/v1/phone/revoke", {"token": token}, headers)
    assert status == 409
    assert problem["type"].endswith(":already-redeemed")
    assert problem["detail"].startswith("The trauma center has already taken the images")
    async with RelayClient(relay.url, relay.sender_credential) as er:
        assert (await er.status(first.transfer_id))["state"] == "revoked"
        assert (await er.status(second.transfer_id))["state"] == "delivered"

    db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
    try:
        rows = db.execute(
            "SELECT transfer_id, outcome FROM audit WHERE action = 'phone-revocation' ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    assert rows == [(first.transfer_id, "success"), (second.transfer_id, "failure")]
