"""The `trauma-relay` command. Subcommands import their package lazily, so the relay process
never loads DICOM code and a site agent never loads the server."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from relay import errors


def _relay_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("relay", help="run the relay server")
    p.add_argument("--data", required=True, type=Path, help="data directory")
    p.add_argument("--listen", default="127.0.0.1:8750", help="HOST:PORT (default %(default)s)")
    p.add_argument("--log-file", type=Path, help="also write the log to this file")
    p.set_defaults(run=_run_relay)

    site = sub.add_parser("site", help="manage the sites known to a relay")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    add = site_sub.add_parser("add", help="register a sending hospital or trauma center")
    add.add_argument("name", help="short name, e.g. st-mary-er")
    add.add_argument("--role", required=True, choices=("sending", "receiving"))
    add.add_argument("--data", required=True, type=Path, help="the relay's data directory")
    add.add_argument("--display-name", help="name shown in the directory of destinations")
    add.add_argument("--json", action="store_true", help="print one JSON object")
    add.set_defaults(run=_run_site_add)


def _run_relay(args: argparse.Namespace) -> int:
    from aiohttp import web

    from relay import config as relay_config
    from relay.app import make_app

    config = relay_config.load(args.data, args.listen)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_file: Path | None = args.log_file or config.log_file
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers
    )
    logging.getLogger("relay").info(
        "relay listening on %s:%d, data in %s", config.host, config.port, config.data_dir
    )
    web.run_app(make_app(config), host=config.host, port=config.port, print=None)
    return 0


def _run_site_add(args: argparse.Namespace) -> int:
    from relay.sites import add_site

    new = asyncio.run(add_site(args.data, args.name, args.role, args.display_name))
    if args.json:
        print(
            json.dumps(
                {
                    "name": new.site.name,
                    "role": new.site.role,
                    "display_name": new.site.display_name,
                    "credential": new.credential,
                }
            )
        )
    else:
        print(f"Site {new.site.name!r} ({new.site.role}) added.")
        print("Its credential is shown only this once; store it in the site's credential file:")
        print(new.credential)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trauma-relay",
        description="Move an imaging study, end-to-end encrypted, from an ER to a trauma center.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _relay_parser(sub)
    from receiving_site.cli import add_parsers as add_receiving
    from sending_site.cli import add_parsers as add_sending

    add_sending(sub)
    add_receiving(sub)
    demo = sub.add_parser("demo", help="show a whole transfer on this machine, with no set-up")
    demo.add_argument("--instances", type=int, default=20, help="synthetic CT slices")
    demo.add_argument("--keep", type=Path, help="keep the demo's files in this folder")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from relay.demo import run_demo

    return asyncio.run(run_demo(instances=args.instances, keep=args.keep))


def main(argv: list[str] | None = None) -> int:
    from receiving_site.errors import ReceivingError
    from sending_site.errors import SendingError
    from transfer_codes.errors import TransferCodeError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except errors.RelayError as e:
        print(f"trauma-relay: {e.detail}", file=sys.stderr)
        return 2
    except (SendingError, ReceivingError, TransferCodeError) as e:
        print(f"trauma-relay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trauma-relay: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
