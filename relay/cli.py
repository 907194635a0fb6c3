"""The relay's subcommands of `trauma-relay`: `relay` (run the server) and `site add`.

`trauma_relay.cli` composes these with the agents' subcommands; each imports its package lazily,
so the relay process never loads DICOM code."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import socket
from pathlib import Path

# What binding the listening socket fails with when --listen is wrong or the port is taken.
_LISTEN_ERRORS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add.add_argument(
        "--data",
        required=True,
        type=Path,
        help="the relay's data directory: where the relay has run, unless --create is given",
    )
    add.add_argument(
        "--create",
        action="store_true",
        help="set up a new relay's data directory (made if missing) before it first runs",
    )
    add.add_argument("--display-name", help="name shown in the directory of destinations")
    add.add_argument("--json", action="store_true", help="print one JSON object")
    add.set_defaults(run=_run_site_add)


def _run_relay(args: argparse.Namespace) -> int:
    from aiohttp import web

    from relay import config as relay_config
    from relay import errors
    from relay.app import make_app
    from relay.sites import open_data_folder

    config = relay_config.load(args.data, args.listen)
    open_data_folder(config.data_dir, create=True)  # the relay's first run sets it up
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_file: Path | None = args.log_file or config.log_file
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers
    )
    try:
        web.run_app(
            make_app(config),
            host=config.host,
            port=config.port,
            # Called once the socket is bound, so the line is only logged when it is true.
            print=lambda _: logging.getLogger("relay").info(
                "relay listening on %s:%d, data in %s", config.host, config.port, config.data_dir
            ),
        )
    except OSError as e:
        if not isinstance(e, socket.gaierror) and e.errno not in _LISTEN_ERRORS:
            raise
        # aiohttp puts the whole bind attempt in strerror; the system's own words are shorter.
        reason = os.strerror(e.errno) if e.errno and e.errno > 0 else e.strerror or str(e)
        remedy = {
            errno.EADDRINUSE: "Stop whatever uses the port, or choose another with --listen.",
            errno.EACCES: "Ports below 1024 need privileges: choose another with --listen.",
        }.get(e.errno or 0, "Check --listen HOST:PORT: HOST must be an address of this machine.")
        raise errors.CannotListen(
            f"The relay could not listen on {args.listen} ({reason}). {remedy}"
        ) from e
    return 0


def _run_site_add(args: argparse.Namespace) -> int:
    from relay.sites import add_site

    new = asyncio.run(
        add_site(args.data, args.name, args.role, args.display_name, must_exist=not args.create)
    )
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
