"""What an agent hands the console framework: its title, its state folder, its pages and how
its own errors read. Everything else (sign-in, sessions, CSRF, the page frame, error pages,
assets) the framework does the same for both agents."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


@dataclass(frozen=True)
class Link:
    """One entry of the navigation at the top of every page."""

    label: str
    path: str


@dataclass(frozen=True)
class AgentConsole:
    """One agent's console.

    - `title`: what the console is called on every page ("ER console").
    - `folder`: the agent's state folder (`<state>/sending`); accounts and audit log live there.
    - `templates`: the package whose `templates/` folder holds the agent's pages; they extend
      the framework's `base.html` (`site_agent/console/templates/`).
    - `routes`: the agent's handlers (a `web.RouteTableDef`); every one needs a signed-in user.
      The agent serves `/`, the page staff land on after sign-in.
    - `navigation`: links shown beside the user's name.
    - `errors`: the agent's exception classes whose text is a sentence for staff, with the HTTP
      status to answer; a handler may simply let them rise.
    - `setup`: called with the application before it starts, to add the agent's own `AppKey`s
      and `cleanup_ctx` lifetimes (a relay client, a DICOM listener).
    - `add_user`: the command that adds an account, named on the sign-in page while none exists.
    """

    title: str
    folder: Path
    templates: str
    routes: Iterable[web.AbstractRouteDef] = ()
    navigation: tuple[Link, ...] = ()
    errors: tuple[tuple[type[Exception], int], ...] = ()
    setup: Callable[[web.Application], None] | None = None
    add_user: str = "trauma-relay ... user add NAME"
