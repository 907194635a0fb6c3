"""A notice for the page a POST redirects to: kept in the poster's session by the page's path,
shown once by that page's next GET from the same session, within a minute; never another
session's."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from site_agent.console import notices
from site_agent.console.appkeys import CLOCK, attach
from site_agent.console.sessions import Session, SessionBook

T0 = 1_800_000_000.0


def _request(app: web.Application, path: str, session: Session | None) -> web.Request:
    request = make_mocked_request("GET", path, app=app)
    if session is not None:
        attach(request, session)
    return request


def test_a_notice_is_shown_once_on_its_page_to_its_session_only() -> None:
    now = [T0]
    app = web.Application()
    app[CLOCK] = lambda: now[0]
    book = SessionBook(1800.0)
    mine, theirs = book.start("registrar.lee", T0), book.start("registrar.kim", T0)
    notices.leave(_request(app, "/imports/T/import", mine), "/imports/T", "not used")

    assert notices.take(_request(app, "/imports/T", theirs)) is None
    assert notices.take(_request(app, "/imports/OTHER", mine)) is None
    assert notices.take(_request(app, "/imports/T", mine)) == "not used"
    assert notices.take(_request(app, "/imports/T", mine)) is None  # once
    assert notices.take(_request(app, "/imports/T", None)) is None


def test_a_notice_not_taken_within_a_minute_is_not_shown_later() -> None:
    now = [T0]
    app = web.Application()
    app[CLOCK] = lambda: now[0]
    session = SessionBook(1800.0).start("registrar.lee", T0)
    notices.leave(_request(app, "/x", session), "/imports/T", "late")
    now[0] = T0 + notices.NOTICE_SECONDS + 1
    assert notices.take(_request(app, "/imports/T", session)) is None
    for n in range(notices.MAX_NOTICES + 3):
        notices.leave(_request(app, "/x", session), f"/imports/{n}", n)
    assert len(session.notices) == notices.MAX_NOTICES
    assert notices.take(_request(app, "/imports/0", session)) is None  # the oldest went first
    assert notices.take(_request(app, f"/imports/{notices.MAX_NOTICES + 2}", session)) == (
        notices.MAX_NOTICES + 2
    )
