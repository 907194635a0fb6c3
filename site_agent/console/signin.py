"""Sign-in and sign-out.

`GET /sign-in` starts an anonymous session (for the form's CSRF token) and shows the form, with
a sentence when a session has just ended. `POST /sign-in` checks the token, the throttle, then
the password (off the event loop, a few at a time); on success the anonymous session is
replaced by a signed-in one with a new id. `POST /sign-out` ends the session. Each outcome is
audited; a password never is.
"""

from __future__ import annotations

import asyncio
import hmac
import math

from aiohttp import web

from site_agent import errors as agent_errors
from site_agent import passwords
from site_agent.accounts import user_name
from site_agent.console.appkeys import (
    ACCOUNTS,
    ADD_USER,
    AUDIT,
    CLOCK,
    SESSIONS,
    SETTINGS,
    THROTTLE,
    VERIFYING,
    address_of,
    attach,
    session_of,
)
from site_agent.console.guard import COOKIE, set_cookie
from site_agent.console.pages import CSRF_FIELD, render
from site_agent.console.sessions import MAX_AGE, Session

routes = web.RouteTableDef()

ENDED = {
    "idle": "You were signed out after {idle} without activity. Sign in to continue.",
    "max-age": f"You were signed out after {MAX_AGE / 3600:g} hours. Sign in to continue.",
    "removed": "Your account was removed from this console. Ask your console administrator.",
    "password-changed": (
        "Your password was changed, so you were signed out. Sign in with the new password."
    ),
    "crowded-out": (
        "You were signed out because more people were signed in to this console than it keeps "
        "at once. Sign in to continue."
    ),
    "signed-out": "You are signed out.",
}
UNDONE = (
    "What you pressed last was not done: after signing in, open that page again and do it again."
)
UNKNOWN = "(no such account)"
WRONG = "That user name and password do not match. Check both (and Caps Lock), then try again."
STALE = "This page had been open too long. Please enter your user name and password again."
WAIT = (
    "Too many failed sign-ins. Try again in {minutes}. If you have forgotten your password, "
    "ask your console administrator to set a new one."
)


def _idle_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def next_path(value: object) -> str:
    """Where to go after sign-in: a path on this console only (never another site), else "/".
    The pages sign-in sends back to come from `guard.to_sign_in` (`path_qs`, percent-encoded),
    so a raw space, control character or backslash is never one of them: refused anywhere, as
    browsers drop tabs and line breaks from a Location ("/", a tab, "/x" becomes "//x",
    another site) and read a backslash as a slash."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        return value
    return "/"


def _form(
    request: web.Request,
    *,
    status: int = 200,
    problem: str = "",
    notice: str = "",
    user: str = "",
    next_to: str = "/",
) -> web.Response:
    return render(
        request,
        "sign_in.html",
        status=status,
        problem=problem,
        notice=notice,
        user_value=user,
        next_to=next_to,
        no_accounts=not request.app[ACCOUNTS].all(),
        add_user=request.app[ADD_USER],
    )


def _anonymous(request: web.Request) -> Session | None:
    """Give this request an anonymous session if it has none; the new session, whose cookie
    the caller sets on its response."""
    if session_of(request) is not None:
        return None
    session = request.app[SESSIONS].start(None, request.app[CLOCK]())
    attach(request, session)
    return session


def _with_cookie(request: web.Request, response: web.Response, new: Session | None) -> web.Response:
    if new is not None:
        set_cookie(request, response, new.id)
    return response


@routes.get("/sign-in")
async def sign_in_page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None and session.user is not None:
        raise web.HTTPSeeOther(next_path(request.query.get("next")))
    ended = request.query.get("ended", "")
    notice = ENDED.get(ended, "").format(idle=_idle_words(request.app[SETTINGS].idle_timeout))
    if request.query.get("undone"):
        notice = f"{notice} {UNDONE}".strip()
    new = _anonymous(request)
    page = _form(request, notice=notice, next_to=next_path(request.query.get("next")))
    return _with_cookie(request, page, new)


@routes.post("/sign-in")
async def sign_in(request: web.Request) -> web.StreamResponse:
    app, address = request.app, address_of(request)
    form = await request.post()
    typed, password = str(form.get("user", "")), str(form.get("password", ""))
    next_to = next_path(form.get("next"))
    session = session_of(request)
    if session is not None and session.user is not None:
        raise web.HTTPSeeOther(next_to)  # signed in meanwhile, in another tab
    token = str(form.get(CSRF_FIELD, ""))
    if session is None or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        await app[AUDIT].arecord(
            "form-refused", who="-", where=address, outcome="refused", path="/sign-in"
        )
        new = _anonymous(request)
        page = _form(request, status=403, problem=STALE, user=typed[:64], next_to=next_to)
        return _with_cookie(request, page, new)
    try:
        name = user_name(typed)
    except agent_errors.UserNameRefused:
        name = typed.strip().lower()[:64]
    now = app[CLOCK]()
    wait = app[THROTTLE].wait(name, address, now)
    # A name that is no account is not recorded as typed: it is often a password typed into
    # the wrong field.
    who = name if app[ACCOUNTS].find(name) is not None else UNKNOWN
    if wait > 0:
        await app[AUDIT].arecord("sign-in-throttled", who=who, where=address, outcome="refused")
        return _form(
            request,
            status=429,
            problem=WAIT.format(minutes=_minutes(wait)),
            user=typed[:64],
            next_to=next_to,
        )
    account = app[ACCOUNTS].find(name)
    stored = account.password if account else passwords.decoy()
    # Counted from here (no await since `wait`) until its failure is: attempts sent at once
    # get no more password checks than the same sent one by one.
    app[THROTTLE].begin(name, address)
    try:
        async with app[VERIFYING]:
            matches = await asyncio.to_thread(passwords.verify, password, stored)
        if account is None or not matches:
            app[THROTTLE].failed(name, address, app[CLOCK]())
    finally:
        app[THROTTLE].ended(name, address)
    if account is None or not matches:
        await app[AUDIT].arecord(
            "sign-in-refused",
            who=who,
            where=address,
            outcome="refused",
            reason="unknown user" if account is None else "wrong password",
        )
        return _form(request, status=403, problem=WRONG, user=typed[:64], next_to=next_to)
    app[THROTTLE].succeeded(name)
    if not account.password.current:  # parameters raised since: store the stronger hash
        fresh = await asyncio.to_thread(passwords.hash_password, password)
        # Only over the hash just checked: a password set meanwhile must not be undone.
        await asyncio.to_thread(app[ACCOUNTS].renew_password, name, account.password, fresh)
    app[SESSIONS].end(session.id)
    # Begun when the password was read, not after its check: a password changed meanwhile
    # (`user password`) ends this session at its next request, as one begun before it.
    signed_in = app[SESSIONS].start(name, now)
    for gone in app[SESSIONS].take_crowded_out():
        await app[AUDIT].arecord("session-expired", who=gone.user, where="-", why=gone.why.value)
    await app[AUDIT].arecord("sign-in", who=name, where=address)
    response = web.HTTPSeeOther(next_to)
    set_cookie(request, response, signed_in.id)
    raise response


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None:
        request.app[SESSIONS].end(session.id)
        await request.app[AUDIT].arecord(
            "sign-out", who=session.user or "-", where=address_of(request)
        )
    response = web.HTTPSeeOther("/sign-in?ended=signed-out")
    response.del_cookie(COOKIE, path="/")
    raise response
