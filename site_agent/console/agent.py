"""What an agent hands the console framework: its pages (`AgentPages`, declared once in the
agent's console package as `PAGES`) and its settings (anything with `console` and `state`
sections). Everything else (sign-in, sessions, CSRF, the page frame, error pages, assets) the
framework does the same for both agents."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from site_agent.settings.sections import ConsoleSettings, StateSettings


class AgentSettings(Protocol):
    """The part of an agent's root settings the console reads."""

    @property
    def console(self) -> ConsoleSettings: ...

    @property
    def state(self) -> StateSettings: ...


@dataclass(frozen=True)
class Link:
    """One entry of the navigation at the top of every page."""

    label: str
    path: str


@dataclass(frozen=True)
class AgentPages:
    """One agent's pages.

    - `title`: what the console is called on every page ("ER console").
    - `templates`: the package whose `templates/` folder holds the agent's templates (usually
      the agent's console package, `__name__`); they extend the framework's `base.html` and
      may not reuse its names (`base.html`, `sign_in.html`, `error.html`).
    - `routes`: the agent's handlers (a `web.RouteTableDef`); every one needs a signed-in user.
      The agent serves `/`, the page staff land on after sign-in.
    - `navigation`: links shown beside the user's name.
    - `errors`: the agent's exception classes whose text is a sentence for staff, with the HTTP
      status to answer; a handler may simply let them rise.
    - `sentence`: what the error page says for one of those: their text, unless the agent words
      it for its console (where the command line names an option, the console a button).
    - `setup`: called with the application and the agent's settings before it starts, to add
      the agent's own `AppKey`s and `cleanup_ctx` lifetimes (a relay client, a DICOM node).
    """

    title: str
    templates: str
    routes: Iterable[web.AbstractRouteDef] = ()
    navigation: tuple[Link, ...] = ()
    errors: tuple[tuple[type[Exception], int], ...] = ()
    sentence: Callable[[Exception], str] = str
    setup: Callable[[web.Application, Any], None] | None = None
