"""The commands both agents have, under each agent's group (`trauma-relay sender ...`,
`trauma-relay receiver ...`):

- `console`: serve the agent's web console;
- `user add NAME`, `user password NAME`, `user remove NAME`, `user list`: its local accounts
  (a password is typed at a prompt, twice, or read from standard input; never an argument);
- `--config FILE`, `--set SECTION.KEY=VALUE` and `--print-config` after the group or a command.

An agent describes itself with an `Agent` and calls `add_group`, which returns the group's
subparsers so the agent can add commands of its own. Building the command line imports only
argparse; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from site_agent import agent_logs, errors
from site_agent.credential import AgentCredential
from site_agent.settings.arguments import add_arguments, read

if TYPE_CHECKING:
    from aiohttp import web

    from site_agent.accounts import Accounts
    from site_agent.audit import AuditLog


@dataclass(frozen=True)
class Agent:
    """One agent's group of commands: `trauma-relay <command> ...`, keeping its files in
    `<state>/<folder>/`, with the settings declared by its root `settings` class and the
    console pages `PAGES` of its `pages` package (imported only when the console runs)."""

    command: str
    folder: str
    settings: type
    pages: str
    # "module:function" that runs the whole agent when its group is given no command
    # (`trauma-relay sender --config FILE`), called with the checked settings; empty: none.
    service: str = ""

    @property
    def env_prefix(self) -> str:
        """Of its settings in the environment: TRAUMA_RELAY_SENDER_<SECTION>_<KEY>."""
        return f"TRAUMA_RELAY_{self.command.upper()}"

    @property
    def title(self) -> str:
        return f"{self.folder} agent"

    def credential(self, settings: Any) -> AgentCredential:
        """Its relay credential, as its `settings` name it (read when needed)."""
        return AgentCredential(settings.relay.credential_file, self.env_prefix)

    @property
    def add_user(self) -> str:
        return f"trauma-relay {self.command} user add NAME"


def add_group(sub: Any, agent: Agent, *, help: str) -> Any:
    """Add `trauma-relay <agent.command> ...`; the group's subparsers, for more commands."""
    described = f"The {agent.title}." + (
        " Without a command: run the whole agent with --config FILE." if agent.service else ""
    )
    group = sub.add_parser(agent.command, help=help, description=described)
    add_arguments(group, group=True)
    group.set_defaults(run=partial(_run_group, agent, group))
    commands = group.add_subparsers(dest=f"{agent.command}_command", metavar="COMMAND")

    console = commands.add_parser(
        "console", help="serve the web console", description=f"Serve the {agent.title}'s console."
    )
    add_arguments(console)
    console.set_defaults(run=partial(run_console, agent))

    user = commands.add_parser("user", help="manage the console's accounts")
    user_commands = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    for action, run, text in (
        ("add", run_user_add, "add an account (the password is asked for twice)"),
        ("password", run_user_password, "give an account a new password"),
        ("remove", run_user_remove, "remove an account (its sessions end at once)"),
        ("list", run_user_list, "list the accounts"),
    ):
        parser = user_commands.add_parser(
            action, help=text, description=text[0].upper() + text[1:] + "."
        )
        if action != "list":
            parser.add_argument("name", help="user name, e.g. jsmith")
        add_arguments(parser)
        parser.set_defaults(run=partial(run, agent))
    return commands


# -- settings ---------------------------------------------------------------------------------


def settings_of(agent: Agent, args: argparse.Namespace, *, check: bool = True) -> Any:
    """The agent's settings from --config, the environment and --set; checked unless printing."""
    from site_agent.settings import load

    options = read(args)
    return load(
        agent.settings,
        agent.env_prefix,
        file=options.config,
        assignments=options.assignments,
        check=check,
    )


def _printed(agent: Agent, args: argparse.Namespace) -> bool:
    """Print the configuration if --print-config was given; whether it was."""
    if not read(args).print_config:
        return False
    from site_agent.settings import render

    title = f"trauma-relay {agent.command}: the {agent.title}'s configuration."
    command = f"trauma-relay {agent.command}" + ("" if agent.service else " console")
    settings = settings_of(agent, args, check=False)
    sys.stdout.write(render(settings, title=title, prefix=agent.env_prefix, command=command))
    return True


def _run_group(agent: Agent, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if _printed(agent, args):
        return 0
    if agent.service:
        module, _, function = agent.service.partition(":")
        run: Callable[[Any], int] = getattr(importlib.import_module(module), function)
        return run(settings_of(agent, args))
    parser.print_usage(sys.stderr)
    print(f"trauma-relay {agent.command}: choose a command (see --help).", file=sys.stderr)
    return 2


def _folder(agent: Agent, settings: Any) -> Path:
    from site_agent.local_state import site_folder

    return site_folder(Path(settings.state.folder), agent.folder)


# -- the console ------------------------------------------------------------------------------


def console_app(
    agent: Agent, settings: Any, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """The agent's console application: its `PAGES` on the framework, with its settings."""
    from site_agent.console import AgentPages, make_app

    pages = importlib.import_module(agent.pages).PAGES
    if not isinstance(pages, AgentPages):
        raise TypeError(f"{agent.pages}.PAGES is not an AgentPages")
    return make_app(
        pages,
        settings,
        folder=_folder(agent, settings),
        add_user=agent.add_user,
        credential=agent.credential(settings),
        clock=clock,
    )


def run_console(agent: Agent, args: argparse.Namespace) -> int:
    if _printed(agent, args):
        return 0
    from site_agent.console import serve

    settings = settings_of(agent, args)
    agent_logs.configure()
    agent_logs.warn_without_credential(agent.credential(settings))
    serve(console_app(agent, settings), settings.console)
    return 0


# -- accounts ---------------------------------------------------------------------------------


def read_new_password(user: str, stdin: TextIO | None = None) -> str:
    """A new password for `user`: typed twice at a prompt on a terminal, else the first line of
    standard input. `PasswordsDiffer` or `PasswordRefused` (saying why) when it cannot be used."""
    from site_agent.passwords import password_problem

    stream = sys.stdin if stdin is None else stdin
    if stream.isatty():
        first = getpass.getpass(f"New password for {user}: ")
        if getpass.getpass("Type it again: ") != first:
            raise errors.PasswordsDiffer()
    else:
        first = stream.readline().rstrip("\r\n")
    problem = password_problem(first, user)
    if problem:
        raise errors.PasswordRefused(problem)
    return first


def _accounts(agent: Agent, args: argparse.Namespace) -> tuple[Accounts, AuditLog]:
    from site_agent.accounts import Accounts
    from site_agent.audit import AuditLog

    folder = _folder(agent, settings_of(agent, args, check=False))
    return Accounts(folder), AuditLog(folder, time.time)


def _operator() -> str:
    """Who changed an account: the operating-system user at the command line."""
    try:
        return f"{getpass.getuser()} (command line)"
    except OSError:  # no user name in this environment
        return "(command line)"


def audit_command(
    log: AuditLog, action: str, *, outcome: str = "success", **detail: object
) -> None:
    """Record in the agent's own audit log what a command did, as the console records the same
    action (its name and `detail`), by the operating-system account (`_operator`), on this
    machine (`where` local) and `via` command line. `detail` never holds a code, a key, a
    capability or a credential."""
    log.record(
        action, who=_operator(), where="local", outcome=outcome, via="command line", **detail
    )


def run_user_add(agent: Agent, args: argparse.Namespace) -> int:
    return _set_password(agent, args, new=True)


def run_user_password(agent: Agent, args: argparse.Namespace) -> int:
    return _set_password(agent, args, new=False)


def _set_password(agent: Agent, args: argparse.Namespace, *, new: bool) -> int:
    """A new account (`new`) or a new password for an existing one; the name is checked before
    the password is asked for."""
    from site_agent.accounts import user_name
    from site_agent.passwords import hash_password

    accounts, audit = _accounts(agent, args)
    name = user_name(args.name)
    if new and accounts.find(name) is not None:
        raise errors.UserExists()
    if not new and accounts.find(name) is None:
        raise errors.UserUnknown()
    hashed = hash_password(read_new_password(name))
    if new:
        accounts.add(name, hashed, time.time())
        print(f"Account {name!r} added; it can sign in to the {agent.title}'s console now.")
    else:
        accounts.set_password(name, hashed, time.time())
        print(f"New password set for {name!r}; if signed in, it is signed out at its next click.")
    action = "user-added" if new else "password-changed"
    audit.record(action, who=_operator(), where="local", user=name)
    return 0


def run_user_remove(agent: Agent, args: argparse.Namespace) -> int:
    from site_agent.accounts import user_name

    accounts, audit = _accounts(agent, args)
    name = user_name(args.name)
    accounts.remove(name)
    audit.record("user-removed", who=_operator(), where="local", user=name)
    print(f"Account {name!r} removed; if it was signed in, it is signed out at its next click.")
    return 0


def run_user_list(agent: Agent, args: argparse.Namespace) -> int:
    import datetime

    accounts, _ = _accounts(agent, args)
    found = accounts.all()
    if not found:
        print(f"No accounts yet. Add one with: {agent.add_user}")
    for account in found:
        since = datetime.datetime.fromtimestamp(account.created_at, tz=datetime.UTC)
        print(f"{account.name}  (added {since:%Y-%m-%d %H:%M} UTC)")
    return 0
