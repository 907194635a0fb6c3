"""A person's opening of a page that shows patients, told apart from the page's own refreshes,
for the audit log: every access to a patient is audited, but a screen left following an import
must not write a record every few seconds.

A refresh is the page's script asking again (`X-Console-Refresh`), or, without the script, its
meta refresh (`?refreshed`), within `REFRESHED_VIEW` of the same person's last recorded view of
the same page; either with none recorded that recently is a view (so neither can hide one: a
request made by hand with the header still reads a page it never opened on the record, and a
screen left following an import writes one record every `REFRESHED_VIEW`). Anything else a
person opens, reloads or posts to that answers with the page is a view.

Used by both consoles: one transfer's page (`transfer-viewed`, the trauma console's import and
held study pages) and the lists that name patients (`list-viewed`)."""

from __future__ import annotations

from aiohttp import web

from site_agent.console.appkeys import AUDIT, CLOCK, VIEWS, address_of, user_of
from site_agent.console.guard import REFRESH_HEADER

REFRESHED = "refreshed"  # the query a page without its script refreshes itself with
REFRESHED_VIEW = 600.0  # seconds after a person opened a page in which its refreshes are not views
MAX_VIEWS = 10_000  # pages' last views remembered; then the console starts afresh


async def audited(
    request: web.Request, action: str, *, page: str, subject: str = "", **detail: object
) -> None:
    """Record `action` (who, where, `page` and `detail`) if this request is a person's view of
    `page` (about `subject`, a transfer id; "" for a list), not one of its own refreshes."""
    user = user_of(request)
    views, now = request.app[VIEWS], request.app[CLOCK]()
    last = views.get((user, page, subject))
    refresh = REFRESH_HEADER in request.headers or REFRESHED in request.query
    if refresh and last is not None and 0 <= now - last < REFRESHED_VIEW:
        return
    recorded: dict[str, object] = {"page": page, **detail}
    await request.app[AUDIT].arecord(
        action, who=user, where=address_of(request), outcome="success", **recorded
    )
    if len(views) >= MAX_VIEWS:
        views.clear()
    views[(user, page, subject)] = now


async def list_viewed(request: web.Request, page: str, listed: int) -> None:
    """A person opened the list `page` (`imports`, `holds`, `studies`, `transfers`) naming
    `listed` patients or transfers: `list-viewed`, with how many, never who. An empty list
    shows no one (no patient is accessed), so it is not recorded."""
    if listed:
        await audited(request, "list-viewed", page=page, listed=listed)
