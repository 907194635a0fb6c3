"""The relay's subcommands of `trauma-relay`: `relay` (run the server) and `site add`,
`site list`, `site rotate`, `site disable` and `site enable`; `audit verify`, `audit export`
and `audit forward` (`relay.audit_trail.commands`).

`trauma_relay.cli` composes these with the agents' subcommands; each imports its package lazily,
so the relay process never loads DICOM code."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

from relay.audit_trail.commands import add_parsers as add_audit
from relay.audit_trail.commands import config_argument

# What binding the listening socket fails with when --listen is wrong or the port is taken.
_LISTEN_ERRORS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "relay",
        help="run the relay server",
        description="Run the relay server. Its settings come from --config FILE (see "
        "--print-config for every one, with its default), then the environment "
        "(TRAUMA_RELAY_SECTION_KEY), then the options below and --set.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="read settings from this TOML file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="assignments",
        metavar="SECTION.KEY=VALUE",
        help="set one setting (repeatable), e.g. --set log.format=json",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the whole configuration these options make, with every default, and exit",
    )
    p.add_argument("--data", type=Path, help="data directory (storage.data_dir)")
    p.add_argument("--listen", help="HOST:PORT (server.listen, default 127.0.0.1:8750)")
    p.add_argument("--log-file", type=Path, help="also write the log to this file (log.file)")
    p.add_argument(
        "--tls-certificate",
        type=Path,
        help="serve HTTPS with this PEM certificate and chain (server.tls_certificate)",
    )
    p.add_argument("--tls-key", type=Path, help="the PEM key of --tls-certificate (server.tls_key)")
    p.set_defaults(run=_run_relay)
    relay_sub = p.add_subparsers(dest="relay_command", metavar="migrate")
    relay_sub.required = False
    migrate = relay_sub.add_parser(
        "migrate",
        help="move a stopped relay's embedded storage into PostgreSQL and/or S3",
        description="Copy everything a stopped relay keeps in its data folder (the SQLite "
        "database, the objects/ folder, the decoy key) into the PostgreSQL database and/or "
        "S3 bucket its new configuration names, keeping every live transfer's codes working. "
        "The target must be empty; the relay must be stopped. Passwords come from the files "
        "the target configuration names, never from the command line.",
    )
    migrate.add_argument(
        "--data", required=True, type=Path, help="the stopped relay's data folder (the source)"
    )
    migrate.add_argument(
        "--to-config",
        type=Path,
        metavar="FILE",
        help="the new relay's TOML configuration (as `trauma-relay relay --config FILE`)",
    )
    migrate.add_argument(
        "--to-data",
        type=Path,
        metavar="DIR",
        help="the new relay's data folder (its relay.toml is read; default: the config's "
        "storage.data_dir)",
    )
    migrate.add_argument("--json", action="store_true", help="print one JSON object")
    migrate.set_defaults(run=_run_migrate)

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
    config_argument(add)
    add.add_argument("--display-name", help="name shown in the directory of destinations")
    add.add_argument("--json", action="store_true", help="print one JSON object")
    add.set_defaults(run=_run_site_add)

    listing = site_sub.add_parser("list", help="list the sites, enabled or not")
    _data_argument(listing)
    listing.set_defaults(run=_run_site_list)

    rotate = site_sub.add_parser(
        "rotate",
        help="give a site a new credential (the old one stops at once, or after --grace)",
        description="Give a site a new credential, shown once. The old credential is refused "
        "at once, or keeps working for --grace SECONDS while the site installs the new one.",
    )
    rotate.add_argument("name", help="the site's name")
    rotate.add_argument(
        "--grace",
        type=float,
        default=0,
        metavar="SECONDS",
        help="how long the old credential keeps working (default 0: it stops at once)",
    )
    _data_argument(rotate)
    rotate.set_defaults(run=_run_site_rotate)

    disable = site_sub.add_parser(
        "disable",
        help="refuse a site from now on (its open transfers are kept unless --revoke-open)",
        description="Refuse a site's credential from now on, and stop offering a disabled "
        "trauma center as a destination. Its open transfers are kept, so a study already on "
        "its way can still be redeemed (a trauma center's, once it is enabled again), unless "
        "--revoke-open.",
    )
    disable.add_argument("name", help="the site's name")
    disable.add_argument(
        "--revoke-open",
        action="store_true",
        help="also revoke its transfers not yet redeemed (their codes stop working)",
    )
    _data_argument(disable)
    disable.set_defaults(run=_run_site_disable)

    enable = site_sub.add_parser("enable", help="accept a disabled site again")
    enable.add_argument("name", help="the site's name")
    _data_argument(enable)
    enable.set_defaults(run=_run_site_enable)

    add_audit(sub)


def _data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, type=Path, help="the relay's data directory (where it runs)"
    )
    config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _run_relay(args: argparse.Namespace) -> int:
    from relay import config as relay_config
    from relay import errors, logs
    from relay.app import make_app
    from relay.serving import serve
    from relay.sites import open_data_folder, refuse_if_migrated
    from relay.tls import server_context

    flags = {
        name: value
        for name, value in (
            ("log_file", args.log_file),
            ("tls_certificate", args.tls_certificate),
            ("tls_key", args.tls_key),
        )
        if value is not None
    }
    given = relay_config.Sources(args.data, args.listen, None, args.config, args.assignments, flags)
    if args.print_config:
        values = relay_config.resolve(given)
        relay_config.check(values)
        print(relay_config.render(values), end="")
        return 0
    config = relay_config.configured(given)
    context = server_context(config)
    if config.metadata_url is None:
        refuse_if_migrated(config.data_dir)
    open_data_folder(config.data_dir, create=True)  # the relay's first run sets it up
    logs.configure(config.log_format, config.log_level, config.log_file)
    log = logging.getLogger("relay")
    listen = (
        f"[{config.host}]:{config.port}" if ":" in config.host else f"{config.host}:{config.port}"
    )

    def listening() -> None:  # called once the socket is bound, so it is only logged when true
        log.info("relay listening on %s (%s), data in %s", config.base_url, listen, config.data_dir)
        if config.cleartext_to_the_network:
            log.warning(
                "The relay serves plain HTTP on %s, which other machines can reach: site "
                "credentials and the patients' phone pages would cross the network unencrypted. "
                "Set tls_certificate and tls_key, or put it behind a TLS proxy and name the proxy "
                "in trusted_proxies (see docs/runbook.md).",
                listen,
            )

    try:
        asyncio.run(
            serve(
                make_app(config),
                config.host,
                config.port,
                context,
                on_listening=listening,
            )
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
            f"The relay could not listen on {listen} ({reason}). {remedy}"
        ) from e
    log.info("relay stopped")
    return 0


def _run_site_add(args: argparse.Namespace) -> int:
    from relay.sites import add_site

    new = asyncio.run(
        add_site(
            args.data,
            args.name,
            args.role,
            args.display_name,
            must_exist=not args.create,
            config_file=args.config,
        )
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


def _when(at: float | None) -> str:
    import datetime

    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _run_site_list(args: argparse.Namespace) -> int:
    from relay.sites import list_sites

    records = asyncio.run(list_sites(args.data, config_file=args.config))
    if args.json:
        listed = [
            {
                "name": r.site.name,
                "role": r.site.role,
                "display_name": r.site.display_name,
                "created_at": r.created_at,
                "disabled_at": r.site.disabled_at,
                "previous_credential_until": r.previous_until,
                "open_transfers": r.open_transfers,
            }
            for r in records
        ]
        print(json.dumps({"sites": listed}))
        return 0
    if not records:
        print(f"No sites yet. Add one with: trauma-relay site add NAME --data {args.data}")
    for r in records:
        state = f"DISABLED since {_when(r.site.disabled_at)}" if r.site.disabled_at else "enabled"
        print(f"{r.site.name}  ({r.site.role}, {state}): {r.site.display_name}")
        print(f"  added {_when(r.created_at)}; {r.open_transfers} open transfer(s)")
        if r.previous_until is not None:
            print(f"  its previous credential works until {_when(r.previous_until)}")
    return 0


def _run_site_rotate(args: argparse.Namespace) -> int:
    from relay.sites import rotate_site

    new = asyncio.run(rotate_site(args.data, args.name, args.grace, config_file=args.config))
    if args.json:
        print(json.dumps({"name": new.site.name, "credential": new.credential}))
        return 0
    if args.grace:
        print(
            f"New credential for {new.site.name!r}; the old one keeps working until "
            f"{_when(time.time() + args.grace)}."
        )
    else:
        print(f"New credential for {new.site.name!r}; the old one is refused from now on.")
    print("It is shown only this once; store it in the site's credential file:")
    print(new.credential)
    return 0


def _run_site_disable(args: argparse.Namespace) -> int:
    from relay.sites import disable_site

    done = asyncio.run(
        disable_site(args.data, args.name, revoke_open=args.revoke_open, config_file=args.config)
    )
    if args.json:
        print(json.dumps({"name": done.site.name, "revoked": done.revoked, "kept": done.kept}))
        return 0
    print(f"Site {done.site.name!r} is disabled: its credential is refused from now on.")
    if done.revoked:
        print(f"{len(done.revoked)} open transfer(s) revoked: their codes no longer work.")
    if done.kept and done.site.role == "receiving":  # its own credential redeems them
        print(
            f"{done.kept} open transfer(s) to it kept: they can be redeemed once it is enabled "
            "again."
        )
    elif done.kept:
        print(
            f"{done.kept} open transfer(s) kept: a study already on its way can still be redeemed."
        )
    print(f"To accept it again: trauma-relay site enable {done.site.name} --data {args.data}")
    return 0


def _run_site_enable(args: argparse.Namespace) -> int:
    from relay.sites import enable_site

    site = asyncio.run(enable_site(args.data, args.name, config_file=args.config))
    if args.json:
        print(json.dumps({"name": site.name, "enabled": True}))
    else:
        print(f"Site {site.name!r} is enabled again: its credential is accepted.")
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    from relay import config as relay_config
    from relay.migrate import MigrationRefused, migrate

    if args.to_config is None and args.to_data is None:
        raise MigrationRefused("Name the new relay with --to-config FILE and/or --to-data DIR.")
    # The source is the data folder as it is: the environment is for the new relay.
    source = relay_config.load(args.data, environ={})
    target = relay_config.configured(
        relay_config.Sources(data_dir=args.to_data, config_file=args.to_config)
    )
    try:
        summary = asyncio.run(migrate(source, target))
    except OSError as e:
        raise MigrationRefused(
            f"The migration stopped: {e}. Whatever it had copied was removed again; fix that "
            "and run it again."
        ) from e
    if args.json:
        print(json.dumps(dataclasses.asdict(summary)))
        return 0
    print(f"Migrated the relay in {source.data_dir}:")
    print(f"  metadata to {summary.metadata_to}:")
    for table, count in summary.rows.items():
        print(f"    {table}: {count}")
    print(
        f"  objects to {summary.objects_to}: {summary.objects} copied ({summary.object_bytes} "
        "bytes), each read back with the same SHA-256"
    )
    print("  audit: the trail as it was, then one record of this move (relay-migrated)")
    if summary.left_behind:
        print(f"  {summary.left_behind} file(s) of purged or unknown transfers were left behind")
    for name in summary.damaged:
        print(f"  warning: object {name} did not match its recorded SHA-256 in the source either")
    if summary.decoy_key:
        print(
            f"The decoy key is in {summary.decoy_key}: copy it into the data folder of every "
            "relay instance sharing this storage (mode 0600)."
        )
    print(
        f"Start the relay on the new configuration; keep {source.data_dir} until it has served "
        "a transfer, then archive or delete it (do not start the old relay on it again)."
    )
    return 0
