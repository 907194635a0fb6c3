"""The console framework over real HTTP (in-process server, real aiohttp client, a frozen
clock): sign-in, sessions and their idle timeout, CSRF on every form, throttling, cookie flags,
error pages and the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from console_harness import (
    NURSE,
    NURSE_PASSWORD,
    T0,
    Console,
    running_console,
    running_test_console,
)

from site_agent import passwords
from site_agent.accounts import Accounts
from site_agent.audit import verify_chain
from site_agent.console import AgentPages, render
from site_agent.console.appkeys import SESSIONS, THROTTLE
from site_agent.console.guard import COOKIE
from site_agent.console.throttle import PER_USER, WINDOW, Window
from site_agent.errors import RelayUnreachable
from site_agent.passwords import PasswordHash, hash_password, verify

pytestmark = pytest.mark.asyncio

IDLE = 30 * 60.0
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, html
    return found.group(1)


@asynccontextmanager
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies for an IP-address host (127.0.0.1), as browsers do.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield session


async def get(client: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, str]:
    async with client.get(url, allow_redirects=False, **kw) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


async def post(
    client: aiohttp.ClientSession, url: str, data: dict[str, str] | None = None, **kw: Any
) -> tuple[int, str, str]:
    async with client.post(url, data=data or {}, allow_redirects=False, **kw) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


async def sign_in(
    client: aiohttp.ClientSession, console: Console, password: str = NURSE_PASSWORD
) -> tuple[int, str, str]:
    _, _, page = await get(client, f"{console.url}/sign-in")
    form = {"csrf_token": token_of(page), "user": NURSE, "password": password, "next": "/"}
    return await post(client, f"{console.url}/sign-in", form)


async def signed_in(client: aiohttp.ClientSession, console: Console) -> str:
    """Sign the nurse in; the CSRF token of the signed-in session."""
    status, location, _ = await sign_in(client, console)
    assert (status, location) == (303, "/")
    status, _, home = await get(client, f"{console.url}/")
    assert status == 200
    return token_of(home)


def audit_actions(console: Console) -> list[str]:
    lines = console.audit.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["action"] for line in lines]


async def test_every_page_needs_sign_in(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        assert await get(client, f"{console.url}/") == (303, "/sign-in", "303: See Other")
        status, location, _ = await get(client, f"{console.url}/studies?q=1")
        assert status == 303
        assert location.startswith("/sign-in?")
        assert parse_qs(urlsplit(location).query) == {"next": ["/studies?q=1"]}
        assert (await get(client, f"{console.url}/static/console.css"))[0] == 200


async def test_sign_in_replaces_the_session_and_sets_safe_cookie_flags(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        async with client.get(f"{console.url}/sign-in") as r:
            anonymous = SimpleCookie(r.headers["Set-Cookie"])[COOKIE]
            page = await r.text()
        assert anonymous["httponly"]
        assert anonymous["samesite"] == "Strict"
        assert not anonymous["secure"]  # plain http on this machine
        form = {"csrf_token": token_of(page), "user": "Nurse.Joy", "password": NURSE_PASSWORD}
        async with client.post(f"{console.url}/sign-in", data=form, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/")
            session = SimpleCookie(r.headers["Set-Cookie"])[COOKIE]
        assert session.value != anonymous.value
        assert session["httponly"]
        assert session["samesite"] == "Strict"
        status, _, home = await get(client, f"{console.url}/")
        assert status == 200
        assert 'Signed in as <strong id="signed-in-user">nurse.joy</strong>' in home
        assert "St. Mary&#39;s Emergency Department" in home
        assert "No study has arrived yet" in home
        # The anonymous session's id is worthless now.
        fixed = aiohttp.ClientSession(cookies={COOKIE: anonymous.value})
        async with fixed:
            assert (await get(fixed, f"{console.url}/"))[0] == 303
    assert audit_actions(console) == ["sign-in"]


async def test_the_cookie_is_secure_behind_an_https_proxy(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path, "sender", "console.public_url=https://er.example") as console,
        browser_like() as client,
        client.get(f"{console.url}/sign-in") as r,
    ):
        assert SimpleCookie(r.headers["Set-Cookie"])[COOKIE]["secure"]


async def test_a_wrong_password_is_refused_and_audited_without_it(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        status, _, page = await sign_in(client, console, "wrong horse battery staple")
        assert status == 403
        assert "That user name and password do not match" in page
        assert (await get(client, f"{console.url}/"))[0] == 303
    text = console.audit.read_text(encoding="utf-8")
    assert "wrong horse" not in text
    assert audit_actions(console) == ["sign-in-refused"]
    assert json.loads(text)["detail"] == {"reason": "wrong password"}


async def test_a_form_without_its_token_is_refused(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        token = await signed_in(client, console)
        for form, headers in [
            ({}, {}),
            ({"csrf_token": "x" * 43}, {}),
            ({"csrf_token": token}, {"Origin": "http://evil.example"}),
            ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
        ]:
            status, _, page = await post(client, f"{console.url}/sign-out", form, headers=headers)
            assert status == 403, (form, headers)
            assert "This form had expired, or did not come from this console" in page
        assert (await get(client, f"{console.url}/"))[0] == 200  # still signed in
        status, location, _ = await post(client, f"{console.url}/sign-out", {"csrf_token": token})
        assert (status, location) == (303, "/sign-in?ended=signed-out")
    assert audit_actions(console) == ["sign-in", *["form-refused"] * 4, "sign-out"]


async def test_a_token_works_only_with_its_own_session(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path) as console,
        browser_like() as first,
        browser_like() as second,
    ):
        token = await signed_in(first, console)
        await signed_in(second, console)
        status, _, _ = await post(second, f"{console.url}/sign-out", {"csrf_token": token})
        assert status == 403


async def test_a_script_sends_the_token_in_a_header(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        token = await signed_in(client, console)
        status, _, _ = await post(
            client, f"{console.url}/sign-out", headers={"X-CSRF-Token": token}
        )
        assert status == 303


async def test_the_sign_in_form_needs_its_token_too(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await get(client, f"{console.url}/sign-in")
        form = {"user": NURSE, "password": NURSE_PASSWORD, "csrf_token": "forged"}
        status, _, page = await post(client, f"{console.url}/sign-in", form)
        assert status == 403
        assert "This page had been open too long" in page
        assert 'value="nurse.joy"' in page
        # The page shown again carries a working token.
        form["csrf_token"] = token_of(page)
        assert (await post(client, f"{console.url}/sign-in", form))[:2] == (303, "/")


async def test_idle_sessions_end_and_the_sign_in_page_says_why(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await signed_in(client, console)
        console.clock.advance(IDLE - 1)
        assert (await get(client, f"{console.url}/"))[0] == 200  # and this counts as activity
        console.clock.advance(IDLE - 1)
        assert (await get(client, f"{console.url}/"))[0] == 200
        console.clock.advance(IDLE)
        status, location, _ = await get(client, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=idle")
        _, _, page = await get(client, f"{console.url}{location}")
        assert "You were signed out after 30 minutes without activity" in page
        assert (await get(client, f"{console.url}/"))[0] == 303
    assert audit_actions(console) == ["sign-in", "session-expired"]


async def test_a_form_sent_after_the_session_ended_is_said_not_done(tmp_path: Path) -> None:
    """A button pressed on a page left open (Send, Revoke, break-glass) after the session
    ended, or after the agent restarted (sessions are in memory), is not done: the sign-in
    page says so, so that nobody believes it happened."""
    async with running_console(tmp_path) as console, browser_like() as client:
        token = await signed_in(client, console)
        console.clock.advance(IDLE)
        status, location, _ = await post(client, f"{console.url}/", {"csrf_token": token})
        assert status == 303
        assert parse_qs(urlsplit(location).query) == {"ended": ["idle"], "undone": ["1"]}
        _, _, page = await get(client, f"{console.url}{location}")
        assert "You were signed out after 30 minutes without activity" in page
        assert "What you pressed last was not done" in page
        client.cookie_jar.clear()  # as after a restart: the agent knows no such session
        status, location, _ = await post(client, f"{console.url}/", {"csrf_token": token})
        assert (status, location) == (303, "/sign-in?undone=1")
        _, _, page = await get(client, f"{console.url}{location}")
        assert "What you pressed last was not done" in page
        _, _, page = await get(client, f"{console.url}/sign-in?ended=idle")
        assert "was not done" not in page  # a page that reloaded itself: nothing was pressed
        status, location, _ = await post(client, f"{console.url}/sign-out", {"csrf_token": token})
        assert (status, location) == (303, "/sign-in")  # signed out already: nothing undone


async def test_a_self_refreshing_page_does_not_keep_the_session(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await signed_in(client, console)
        refresh = {"X-Console-Refresh": "1"}
        console.clock.advance(IDLE - 60)
        assert (await get(client, f"{console.url}/", headers=refresh))[0] == 200
        console.clock.advance(60)
        assert (await get(client, f"{console.url}/", headers=refresh))[0] == 303


async def test_the_idle_timeout_is_a_setting(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path, "receiver", "console.idle_timeout=5m") as console,
        browser_like() as client,
    ):
        await signed_in(client, console)
        console.clock.advance(5 * 60)
        _status, location, _ = await get(client, f"{console.url}/")
        _, _, page = await get(client, f"{console.url}{location}")
        assert "after 5 minutes without activity" in page


async def test_repeated_failures_are_throttled_even_with_the_right_password(
    tmp_path: Path,
) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        for _ in range(PER_USER):
            assert (await sign_in(client, console, "wrong horse battery staple"))[0] == 403
        status, _, page = await sign_in(client, console)
        assert status == 429
        assert "Too many failed sign-ins. Try again in 15 minutes." in page
        console.clock.advance(WINDOW)
        assert (await sign_in(client, console))[:2] == (303, "/")
    actions = audit_actions(console)
    assert actions == ["sign-in-refused"] * PER_USER + ["sign-in-throttled", "sign-in"]
    assert verify_chain(console.audit) == len(actions)


async def test_sign_ins_sent_at_once_get_no_more_tries_than_the_limit(tmp_path: Path) -> None:
    """A refused sign-in keeps its session and form token, so a guesser can post many at once;
    those still being checked count, so no more passwords are tried than the limit allows."""
    async with running_console(tmp_path) as console, browser_like() as client:
        _, _, page = await get(client, f"{console.url}/sign-in")
        form = {"csrf_token": token_of(page), "user": NURSE, "password": "wrong horse battery"}
        answers = await asyncio.gather(
            *(post(client, f"{console.url}/sign-in", form) for _ in range(2 * PER_USER))
        )
        assert sorted(status for status, _, _ in answers) == [403] * PER_USER + [429] * PER_USER
        assert (await sign_in(client, console))[0] == 429  # the right password waits too
    actions = Counter(audit_actions(console))
    assert actions == {"sign-in-refused": PER_USER, "sign-in-throttled": PER_USER + 1}


async def sign_in_from(
    client: aiohttp.ClientSession, console: Console, forwarded: str, password: str
) -> int:
    """A sign-in through a proxy (this test, on 127.0.0.1) naming `forwarded` as the client;
    the answer's status."""
    _, _, page = await get(client, f"{console.url}/sign-in")
    form = {"csrf_token": token_of(page), "user": NURSE, "password": password}
    headers = {"X-Forwarded-For": forwarded}
    return (await post(client, f"{console.url}/sign-in", form, headers=headers))[0]


def audit_where(console: Console) -> list[tuple[str, str]]:
    lines = console.audit.read_text(encoding="utf-8").splitlines()
    return [(r["action"], r["where"]) for r in map(json.loads, lines)]


async def test_behind_a_trusted_proxy_each_client_has_its_own_address(tmp_path: Path) -> None:
    """With the proxy in `console.trusted_proxies`, the address it forwards for is the one the
    throttle counts and the audit log records: one guesser does not make everyone wait."""
    wrong = "wrong horse battery staple"
    async with (
        running_console(tmp_path, "sender", "console.trusted_proxies=127.0.0.1") as console,
        browser_like() as guesser,
        browser_like() as nurse,
    ):
        console.app[THROTTLE].addresses = Window(2)  # as 30 failures, sooner
        assert await sign_in_from(guesser, console, "198.51.100.7", wrong) == 403
        assert await sign_in_from(guesser, console, "198.51.100.7", wrong) == 403
        # A forged address to the left of the proxy's own entry changes nothing.
        assert await sign_in_from(guesser, console, "6.6.6.6, 198.51.100.7", wrong) == 429
        assert await sign_in_from(nurse, console, "198.51.100.8", NURSE_PASSWORD) == 303
        token = token_of((await get(nurse, f"{console.url}/"))[2])
        signed_out = await post(
            nurse,
            f"{console.url}/sign-out",
            {"csrf_token": token},
            headers={"X-Forwarded-For": "198.51.100.8"},
        )
        assert signed_out[0] == 303
    assert audit_where(console) == [
        ("sign-in-refused", "198.51.100.7"),
        ("sign-in-refused", "198.51.100.7"),
        ("sign-in-throttled", "198.51.100.7"),
        ("sign-in", "198.51.100.8"),
        ("sign-out", "198.51.100.8"),
    ]


@pytest.mark.parametrize(
    "assignments",
    [(), ("console.trusted_proxies=10.0.0.0/8",)],
    ids=["no-proxy-trusted", "another-proxy-trusted"],
)
async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    tmp_path: Path, assignments: tuple[str, ...]
) -> None:
    """Anyone can send X-Forwarded-For: from a peer not listed, a new one on every guess does
    not dodge the throttle, and the audit log records the peer."""
    wrong = "wrong horse battery staple"
    async with running_console(tmp_path, "sender", *assignments) as console, browser_like() as c:
        console.app[THROTTLE].addresses = Window(2)
        assert await sign_in_from(c, console, "198.51.100.1", wrong) == 403
        assert await sign_in_from(c, console, "198.51.100.2", wrong) == 403
        assert await sign_in_from(c, console, "198.51.100.3", NURSE_PASSWORD) == 429
    assert audit_where(console) == [
        ("sign-in-refused", "127.0.0.1"),
        ("sign-in-refused", "127.0.0.1"),
        ("sign-in-throttled", "127.0.0.1"),
    ]


async def test_an_unknown_user_is_refused_like_a_wrong_password(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        _, _, page = await get(client, f"{console.url}/sign-in")
        typed = "mistyped-secret-words"  # a password in the wrong field, as happens
        form = {"csrf_token": token_of(page), "user": typed, "password": NURSE_PASSWORD}
        status, _, page = await post(client, f"{console.url}/sign-in", form)
        assert status == 403
        assert "That user name and password do not match" in page
    record = json.loads(console.audit.read_text(encoding="utf-8"))
    assert (record["who"], record["detail"]) == ("(no such account)", {"reason": "unknown user"})
    assert typed not in console.audit.read_text(encoding="utf-8")


async def test_opening_the_sign_in_page_many_times_signs_nobody_out(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await signed_in(client, console)
        book = console.app[SESSIONS]
        book.max_sessions = book.max_anonymous = 5  # as 2,000 of each, sooner
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as stranger:
            for _ in range(20):
                assert (await get(stranger, f"{console.url}/sign-in"))[0] == 200
        assert (await get(client, f"{console.url}/"))[0] == 200
    assert audit_actions(console) == ["sign-in"]


async def test_a_session_crowded_out_by_newer_sign_ins_is_audited(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path) as console,
        browser_like() as first,
        browser_like() as second,
    ):
        console.app[SESSIONS].max_sessions = 1
        await signed_in(first, console)
        await signed_in(second, console)
        status, location, _ = await get(first, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=crowded-out")
        _, _, page = await get(first, f"{console.url}{location}")
        assert "more people were signed in to this console than it keeps" in page
        assert (await get(second, f"{console.url}/"))[0] == 200
    lines = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    assert [r["action"] for r in lines] == ["sign-in", "session-expired", "sign-in"]
    assert (lines[1]["who"], lines[1]["detail"]) == (NURSE, {"why": "crowded-out"})


async def test_removing_an_account_ends_its_sessions(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await signed_in(client, console)
        Accounts(console.folder).remove(NURSE)
        status, location, _ = await get(client, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=removed")


async def test_each_session_a_removed_account_ends_is_audited(tmp_path: Path) -> None:
    """`user remove NAME` ends that user's sessions in every browser at the first request of
    any: each is audited, the one found by this request with its address."""
    async with (
        running_console(tmp_path) as console,
        browser_like() as mine,
        browser_like() as other,
    ):
        await signed_in(mine, console)
        await signed_in(other, console)
        Accounts(console.folder).remove(NURSE)
        status, location, _ = await get(mine, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=removed")
        assert (await get(other, f"{console.url}/"))[:2] == (303, "/sign-in")
    lines = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    ended = [(r["who"], r["where"], r["detail"]) for r in lines if r["action"] == "session-expired"]
    assert sorted(ended) == [
        (NURSE, "-", {"why": "removed"}),
        (NURSE, "127.0.0.1", {"why": "removed"}),
    ]
    assert verify_chain(console.audit) == len(lines)


async def test_a_new_password_ends_the_sessions_begun_before_it(tmp_path: Path) -> None:
    """`user password NAME` (here its `Accounts.set_password`) signs that user out in every
    browser, each end audited once; a sign-in with the new password works."""
    new_password = "a whole new horse battery staple"
    async with (
        running_console(tmp_path) as console,
        browser_like() as mine,
        browser_like() as other,
    ):
        await signed_in(mine, console)
        await signed_in(other, console)
        console.clock.advance(60)
        Accounts(console.folder).set_password(NURSE, hash_password(new_password), console.clock())
        status, location, _ = await get(mine, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=password-changed")
        _, _, page = await get(mine, f"{console.url}{location}")
        assert "Your password was changed" in page
        status, location, _ = await get(other, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=password-changed")
        assert (await sign_in(mine, console))[0] == 403  # the old password
        assert (await sign_in(mine, console, new_password))[:2] == (303, "/")
        assert (await get(mine, f"{console.url}/"))[0] == 200
    lines = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    ended = [(r["who"], r["detail"]) for r in lines if r["action"] == "session-expired"]
    assert ended == [(NURSE, {"why": "password-changed"})] * 2
    # The request that found them ended is this browser's; the other's is told next time.
    where = {r["where"] for r in lines if r["action"] == "session-expired"}
    assert where == {"127.0.0.1", "-"}
    assert [r["action"] for r in lines][-2:] == ["sign-in-refused", "sign-in"]


async def test_with_no_account_the_sign_in_page_says_how_to_add_one(tmp_path: Path) -> None:
    async with running_console(tmp_path, "receiver", users={}) as console, browser_like() as c:
        _, _, page = await get(c, f"{console.url}/sign-in")
        assert "trauma-relay receiver user add NAME" in page


# Browsers drop tabs and line breaks from a Location (so "/\t/x" goes to "//x") and read a
# backslash as a slash.
ELSEWHERE = [
    "//evil.example/",
    "/\t/evil.example",
    "/\r/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "/x/..\\/\\evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\u2028/evil.example",
]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
async def test_after_sign_in_only_local_pages_are_returned_to(
    tmp_path: Path, elsewhere: str
) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        _, _, page = await get(client, f"{console.url}/sign-in", params={"next": elsewhere})
        assert 'name="next" value="/"' in page
        form = {
            "csrf_token": token_of(page),
            "user": NURSE,
            "password": NURSE_PASSWORD,
            "next": elsewhere,
        }
        assert (await post(client, f"{console.url}/sign-in", form))[:2] == (303, "/")
        # Signed in already: the sign-in page sends on at once, to the same place.
        signed_in_already = await get(client, f"{console.url}/sign-in", params={"next": elsewhere})
        assert signed_in_already[:2] == (303, "/")


async def test_after_sign_in_the_page_asked_for_is_returned_to(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        status, location, _ = await get(client, f"{console.url}/studies/7?q=a%20b&page=2")
        assert status == 303
        _, _, page = await get(client, f"{console.url}{location}")
        form = {"csrf_token": token_of(page), "user": NURSE, "password": NURSE_PASSWORD}
        form["next"] = parse_qs(urlsplit(location).query)["next"][0]
        status, location, _ = await post(client, f"{console.url}/sign-in", form)
        assert (status, location) == (303, "/studies/7?q=a%20b&page=2")


class StudyMissing(Exception):
    pass


def _test_pages() -> AgentPages:
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(request: web.Request) -> web.Response:
        return render(request, "sender_home.html")

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        raise StudyMissing("That study is no longer here. Search for it again.")

    @routes.get("/relay")
    async def relay(request: web.Request) -> web.Response:
        raise RelayUnreachable("The relay at https://relay.example could not be reached.")

    @routes.get("/broken")
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /var/lib/x")

    @routes.post("/act")
    async def act(request: web.Request) -> web.Response:
        return web.Response(text="done")

    return AgentPages(
        title="Test console",
        templates="sending_site.console",
        routes=routes,
        errors=((StudyMissing, 409),),
    )


async def test_errors_become_calm_pages(tmp_path: Path) -> None:
    async with running_test_console(tmp_path, _test_pages()) as console, browser_like() as client:
        token = await signed_in(client, console)
        status, _, page = await get(client, f"{console.url}/missing")
        assert status == 409
        assert "That study is no longer here. Search for it again." in page
        status, _, page = await get(client, f"{console.url}/relay")
        assert status == 502
        assert "The relay at https://relay.example could not be reached." in page
        status, _, page = await get(client, f"{console.url}/broken")
        assert status == 500
        assert "Something went wrong on this console" in page
        assert "secret internals" not in page
        assert "Traceback" not in page
        status, _, page = await get(client, f"{console.url}/nowhere")
        assert (status, "There is no page at this address" in page) == (404, True)
        status, _, page = await get(client, f"{console.url}/act")
        assert (status, "This page cannot be used that way" in page) == (405, True)
        assert await post(client, f"{console.url}/act", {"csrf_token": token}) == (200, "", "done")


async def test_pages_carry_security_headers(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        async with client.get(f"{console.url}/sign-in") as r:
            headers = r.headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("agent", ["sender", "receiver"])
async def test_each_agent_has_its_placeholder_home(tmp_path: Path, agent: str) -> None:
    expected = {"sender": "No study has arrived yet", "receiver": "Enter a code"}[agent]
    async with running_console(tmp_path, agent) as console, browser_like() as client:
        await signed_in(client, console)
        _, _, home = await get(client, f"{console.url}/")
        assert expected in home


async def test_a_hash_with_older_parameters_is_renewed_at_sign_in(tmp_path: Path) -> None:
    salt = b"s" * 16
    key = hashlib.scrypt(NURSE_PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    async with running_console(tmp_path, users={}) as console, browser_like() as client:
        Accounts(console.folder).add(NURSE, PasswordHash(2**14, 8, 1, salt, key), now=1.0)
        await signed_in(client, console)
    account = Accounts(console.folder).find(NURSE)
    assert account is not None
    assert account.password.current
    assert verify(NURSE_PASSWORD, account.password)
    # Not a new password: the nurse's own sessions, begun after 1.0, stay.
    assert account.password_changed_at == 1.0


async def test_a_password_changed_during_sign_in_is_not_undone_by_the_renewal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`user password` run while a sign-in with an old-parameters hash is being checked: the
    renewal after the check must not write the old password back over the new one."""
    new_password = "a whole new horse battery staple"
    salt = b"s" * 16
    key = hashlib.scrypt(NURSE_PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    real_verify = passwords.verify

    async with running_console(tmp_path, users={}) as console, browser_like() as client:
        Accounts(console.folder).add(NURSE, PasswordHash(2**14, 8, 1, salt, key), now=1.0)

        def verify_then_change(password: str, stored: PasswordHash) -> bool:
            matches = real_verify(password, stored)
            console.clock.advance(60)  # `user password`, a minute later, while this is checked
            Accounts(console.folder).set_password(
                NURSE, hash_password(new_password), console.clock()
            )
            return matches

        monkeypatch.setattr(passwords, "verify", verify_then_change)
        assert (await sign_in(client, console))[:2] == (303, "/")
        monkeypatch.setattr(passwords, "verify", real_verify)
        # Signed in with the old password, before the change: signed out at once.
        status, location, _ = await get(client, f"{console.url}/")
        assert (status, location) == (303, "/sign-in?ended=password-changed")
    account = Accounts(console.folder).find(NURSE)
    assert account is not None
    assert account.password_changed_at == T0 + 60
    assert verify(new_password, account.password)
    assert not verify(NURSE_PASSWORD, account.password)
