"""A site agent's console in-process (same event loop as the test), on a free port, with a
clock the test moves and accounts made directly in its state folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from receiving_site.console import make_console as make_receiver_console
from receiving_site.settings import ENV_PREFIX as RECEIVER_PREFIX
from receiving_site.settings import ReceiverSettings
from sending_site.console import make_console as make_sender_console
from sending_site.settings import ENV_PREFIX as SENDER_PREFIX
from sending_site.settings import SenderSettings
from site_agent.accounts import Accounts
from site_agent.console import AgentConsole, make_app
from site_agent.local_state import site_folder
from site_agent.passwords import hash_password
from site_agent.settings import load

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
NURSE = "nurse.joy"
NURSE_PASSWORD = "correct horse battery staple"


class FrozenClock:
    """Seconds since the epoch, moved only by `advance`."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Console:
    url: str
    app: web.Application
    clock: FrozenClock
    folder: Path

    @property
    def audit(self) -> Path:
        return self.folder / "console-audit.jsonl"


AGENTS: dict[str, tuple[type, str, Callable[..., web.Application], str]] = {
    "sender": (SenderSettings, SENDER_PREFIX, make_sender_console, "sending"),
    "receiver": (ReceiverSettings, RECEIVER_PREFIX, make_receiver_console, "receiving"),
}


def agent_settings(agent: str, root: Path, *assignments: str) -> Any:
    settings_class, prefix, _, _ = AGENTS[agent]
    return load(
        settings_class,
        prefix,
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


async def _served(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_console(
    root: Path,
    agent: str = "sender",
    *assignments: str,
    users: Mapping[str, str] | None = None,
) -> AsyncIterator[Console]:
    """The agent's console (`sender` or `receiver`) with its accounts (default: the nurse)."""
    settings = agent_settings(agent, root, *assignments)
    _, _, make_console, folder_name = AGENTS[agent]
    folder = site_folder(settings.state.folder, folder_name)
    add_accounts(folder, {NURSE: NURSE_PASSWORD} if users is None else users)
    clock = FrozenClock()
    app = make_console(settings, clock=clock)
    async for url in _served(app):
        yield Console(url, app, clock, folder)


@asynccontextmanager
async def running_test_console(
    root: Path, agent: AgentConsole, *assignments: str
) -> AsyncIterator[Console]:
    """A console for an agent the test defines (its own routes and errors)."""
    settings = agent_settings("sender", root, *assignments)
    add_accounts(agent.folder, {NURSE: NURSE_PASSWORD})
    clock = FrozenClock()
    app = make_app(agent, settings.console, clock=clock)
    async for url in _served(app):
        yield Console(url, app, clock, agent.folder)
