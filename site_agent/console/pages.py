"""Rendering pages: Jinja2 templates with autoescaping, the agent's own first, then the
framework's (`base.html`, `sign_in.html`, `error.html`). A page extends `base.html` and fills
`{% block content %}`; `render` gives every template `console` (the frame: titles, user,
navigation) and `csrf_field` (the hidden input every POST form must hold), and every template
has `how_many_images` ("1 image", "240 images").

    {% extends "base.html" %}
    {% block content %}
      <h1>Recent studies</h1>
      <form method="post" action="/transfers">{{ csrf_field }} ... </form>
    {% endblock %}
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from site_agent.console.agent import Link
from site_agent.console.appkeys import CLOCK, PAGES, SETTINGS, TEMPLATES, session_of
from site_agent.console.errors import ConsoleError
from site_agent.dicom_text import how_many_images

CSRF_FIELD = "csrf_token"
DEFAULT_SITE_NAME = "trauma-relay"


def environment(agent_templates: str) -> jinja2.Environment:
    templates = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader(agent_templates, "templates"),
                jinja2.PackageLoader("site_agent.console", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the page, not silently empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.globals["how_many_images"] = how_many_images
    return templates


@dataclass(frozen=True)
class Frame:
    """What `base.html` shows around every page."""

    title: str
    site_name: str
    user: str | None
    navigation: tuple[Link, ...]
    path: str
    idle_seconds: int


def frame(request: web.Request) -> Frame:
    agent, settings = request.app[PAGES], request.app[SETTINGS]
    session = session_of(request)
    return Frame(
        title=agent.title,
        site_name=settings.site_name or DEFAULT_SITE_NAME,
        user=session.user if session else None,
        navigation=agent.navigation,
        path=request.path,
        idle_seconds=int(settings.idle_timeout),
    )


def csrf_field(request: web.Request) -> Markup:
    session = session_of(request)
    token = session.csrf_token if session else ""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """The page `template`, in the console's frame, as an HTML response."""
    page = request.app[TEMPLATES].get_template(template)
    text = page.render(console=frame(request), csrf_field=csrf_field(request), **context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def error_page(
    request: web.Request,
    error: ConsoleError | None,
    *,
    sentence: str = "",
    status: int = 0,
    title: str = "",
) -> web.Response:
    """The calm error page: a heading, the sentence saying what to do, the time (to quote to
    the help desk) and the way home."""
    moment = datetime.datetime.fromtimestamp(request.app[CLOCK](), tz=datetime.UTC)
    return render(
        request,
        "error.html",
        status=status or (error.status if error else 500),
        heading=title or (error.title if error else ConsoleError.title),
        sentence=sentence or (error.detail if error else ConsoleError().detail),
        moment=moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


__all__ = ["CSRF_FIELD", "Frame", "environment", "error_page", "render"]
