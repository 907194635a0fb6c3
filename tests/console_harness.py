"""A site agent's console in-process (same event loop as the test), on a free port, with a
clock the test moves (`relay_harness.FakeClock`) and accounts made directly in its state
folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from relay_harness import FakeClock
from served_app import served

from receiving_site.cli import RECEIVER
from sending_site.cli import SENDER
from site_agent.accounts import Accounts
from site_agent.commands import Agent, console_app
from site_agent.console import AgentPages, make_app
from site_agent.local_state import site_folder
from site_agent.passwords import hash_password
from site_agent.settings import load

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
NURSE = "nurse.joy"
NURSE_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Console:
    url: str
    app: web.Application
    clock: FakeClock
    folder: Path

    @property
    def audit(self) -> Path:
        return self.folder / "console-audit.jsonl"


AGENTS: dict[str, Agent] = {"sender": SENDER, "receiver": RECEIVER}


def agent_settings(agent: str, root: Path, *assignments: str) -> Any:
    return load(
        AGENTS[agent].settings,
        AGENTS[agent].env_prefix,
        environ={},
        assignments=(
            "relay.url=http://127.0.0.1:9",
            f"state.folder={root / 'state'}",
            "console.site_name=St. Mary's Emergency Department",
            *assignments,
        ),
    )


def add_accounts(folder: Path, users: Mapping[str, str]) -> None:
    accounts = Accounts(folder)
    for name, password in users.items():
        accounts.add(name, hash_password(password), T0)


@asynccontextmanager
async def running_console(
    root: Path,
    agent: str = "sender",
    *assignments: str,
    users: Mapping[str, str] | None = None,
) -> AsyncIterator[Console]:
    """The agent's console (`sender` or `receiver`) with its accounts (default: the nurse)."""
    settings = agent_settings(agent, root, *assignments)
    folder = site_folder(settings.state.folder, AGENTS[agent].folder)
    add_accounts(folder, {NURSE: NURSE_PASSWORD} if users is None else users)
    clock = FakeClock(T0)
    app = console_app(AGENTS[agent], settings, clock=clock)
    async with served(app) as url:
        yield Console(url, app, clock, folder)


@asynccontextmanager
async def running_test_console(
    root: Path, pages: AgentPages, *assignments: str
) -> AsyncIterator[Console]:
    """A console with pages the test defines (its own routes and errors)."""
    settings = agent_settings("sender", root, *assignments)
    folder = root / "agent"
    add_accounts(folder, {NURSE: NURSE_PASSWORD})
    clock = FakeClock(T0)
    credential = SENDER.credential(settings)
    app = make_app(
        pages, settings, folder=folder, add_user="add a user", credential=credential, clock=clock
    )
    async with served(app) as url:
        yield Console(url, app, clock, folder)
