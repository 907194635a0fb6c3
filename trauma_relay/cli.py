"""The `trauma-relay` command: each package contributes its subcommands, and errors become one
line for the person at the keyboard. Subcommands import their package lazily, so the relay
process never loads DICOM code and a site agent never loads the server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from receiving_site.cli import add_parsers as add_receiving
from relay.cli import add_parsers as add_relay
from sending_site.cli import add_parsers as add_sending


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trauma-relay",
        description="Move an imaging study, end-to-end encrypted, from an ER to a trauma center.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_relay(sub)
    add_sending(sub)
    add_receiving(sub)
    demo = sub.add_parser("demo", help="show a whole transfer on this machine, with no set-up")
    demo.add_argument("--instances", type=int, default=20, help="synthetic CT slices")
    demo.add_argument("--keep", type=Path, help="keep the demo's files in this folder")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from trauma_relay.demo import run_demo

    return asyncio.run(run_demo(instances=args.instances, keep=args.keep))


def main(argv: list[str] | None = None) -> int:
    from receiving_site.errors import ReceivingError
    from relay.errors import RelayError
    from sending_site.errors import SendingError
    from site_agent.errors import AgentError
    from transfer_codes.errors import TransferCodeError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except RelayError as e:
        print(f"trauma-relay: {e.detail}", file=sys.stderr)
        return 2
    except (AgentError, SendingError, ReceivingError, TransferCodeError) as e:
        print(f"trauma-relay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trauma-relay: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
