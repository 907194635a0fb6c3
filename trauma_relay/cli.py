"""The `trauma-relay` command: each package contributes its subcommands, and errors become one
line for the person at the keyboard (or, with `--json`, one JSON object for a script). Subcommands
import their package lazily, so the relay process never loads DICOM code and a site agent never
loads the server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from receiving_site.cli import add_parsers as add_receiving
from relay.cli import add_parsers as add_relay
from sending_site.cli import add_parsers as add_sending

DEMO_MAX_INSTANCES = 5000  # a whole trauma pan-scan


class UsageError(Exception):
    """The command line itself is wrong (an unknown option, a bad value)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is raised (and reported by `main`) instead of
    printed and exited on, so `--json` can report it as JSON. Subcommands' parsers are made
    with this class too (argparse makes them with the class of their parent)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _demo_instances(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= DEMO_MAX_INSTANCES:
        raise argparse.ArgumentTypeError(
            f"give a whole number of images from 1 to {DEMO_MAX_INSTANCES}, not {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    # Typed as the base class: the packages' add_parsers take argparse's own sub-parsers.
    parser: argparse.ArgumentParser = Parser(
        prog="trauma-relay",
        description="Move an imaging study, end-to-end encrypted, from an ER to a trauma center.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_relay(sub)
    add_sending(sub)
    add_receiving(sub)
    demo = sub.add_parser("demo", help="show a whole transfer on this machine, with no set-up")
    demo.add_argument(
        "--instances",
        type=_demo_instances,
        default=20,
        help=f"synthetic CT slices, 1 to {DEMO_MAX_INSTANCES} (default %(default)s)",
    )
    demo.add_argument("--keep", type=Path, help="keep the demo's files in this folder")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from trauma_relay.demo import run_demo

    return asyncio.run(run_demo(instances=args.instances, keep=args.keep))


def error_code(error: Exception) -> str:
    """A stable name for `error` in `--json` output: the relay's problem code when it has one
    (`transfer_codes.wire.Problem`), else the exception's class name in kebab case
    (`CredentialMissing` becomes ``credential-missing``)."""
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return str(code)
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(error).__name__).lower()


def _report(message: str, code: str, as_json: bool) -> None:
    """One error: a line on stderr for the person watching and, with `--json`, also one JSON
    object on stdout for the script (stdout then holds nothing else)."""
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    print(f"trauma-relay: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from receiving_site.errors import ReceivingError
    from relay.errors import RelayError
    from sending_site.errors import SendingError
    from site_agent.errors import AgentError
    from transfer_codes.errors import TransferCodeError

    words = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except UsageError as e:
        # No parsed arguments yet, so `--json` is looked for among the words themselves.
        if "--json" in words:
            print(json.dumps({"error": {"code": "usage", "message": e.message}}), flush=True)
        e.parser.print_usage(sys.stderr)
        print(f"{e.parser.prog}: error: {e.message}", file=sys.stderr)
        return 2
    as_json = bool(getattr(args, "json", False))
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # here, where a reader gone early is caught
    except BrokenPipeError:
        # The reader stopped early (`trauma-relay audit export ... | head`): nothing to tell
        # it, and no traceback. Standard output now goes nowhere, so the interpreter's last
        # flush at exit raises no second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except RelayError as e:
        _report(e.detail, error_code(e), as_json)
        return 2
    except (AgentError, SendingError, ReceivingError, TransferCodeError) as e:
        _report(str(e), error_code(e), as_json)
        return 2
    except KeyboardInterrupt:
        _report("interrupted", "interrupted", as_json)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
