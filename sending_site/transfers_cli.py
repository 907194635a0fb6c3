"""`trauma-relay destinations`, `trauma-relay transfers` and `trauma-relay revoke`: what the ER
can send to, what it has sent and how each stands, and withdrawing one."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from site_agent.relay_setting import add_relay_arguments


def add_parsers(sub: Any) -> None:
    destinations = sub.add_parser(
        "destinations",
        help="list the trauma centers this relay can send to",
        description="List the relay's receiving sites: the name to give --to, and its display "
        "name.",
    )
    add_relay_arguments(destinations)
    _common(destinations, state=False)
    destinations.set_defaults(run=run_destinations)

    transfers = sub.add_parser(
        "transfers",
        help="list this site's transfers and how each stands",
        description="List the transfers this site sent (from its state folder), newest first, "
        "with each one's status on the relay and, once delivered, the receipt.",
    )
    transfers.add_argument("--relay", help="relay URL (default: the one each transfer used)")
    _common(transfers)
    transfers.set_defaults(run=run_transfers)

    revoke = sub.add_parser(
        "revoke",
        help="withdraw a transfer this site sent (its code stops working)",
        description="Revoke a transfer before the trauma center redeems it: its code and QR "
        "stop working and the patient's phone says it was cancelled.",
    )
    revoke.add_argument("transfer_id")
    revoke.add_argument("--relay", help="relay URL (default: the one the transfer used)")
    _common(revoke)
    revoke.set_defaults(run=run_revoke)


def _common(parser: argparse.ArgumentParser, *, state: bool = True) -> None:
    parser.add_argument("--credential-file", help="file holding this site's relay credential")
    if state:
        parser.add_argument("--state", type=Path, help="this site's state folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _credential(args: argparse.Namespace) -> str:
    from site_agent.credential import read_credential

    return read_credential(args.credential_file)


def run_destinations(args: argparse.Namespace) -> int:
    from sending_site.destinations import disabled_words
    from sending_site.preflight import directory
    from site_agent.client import RelayClient
    from site_agent.relay_address import relay_address
    from site_agent.relay_setting import relay_from_arguments
    from site_agent.terminal_text import shown

    relay = relay_address(relay_from_arguments(args))

    async def go() -> tuple[list[Any], list[Any]]:
        async with RelayClient(relay, _credential(args)) as client:
            return await directory(client, retry_for=0)

    sites, disabled = asyncio.run(go())
    if args.json:
        listed = [{"name": s.name, "display_name": s.display_name} for s in sites]
        off = [{"name": s.name, "display_name": s.display_name} for s in disabled]
        print(json.dumps({"destinations": listed, "disabled": off}))
        return 0
    if not sites and disabled:
        print(f"This relay has no trauma center to send to now. {disabled_words(disabled)}")
    elif not sites:
        print("This relay has no trauma centers yet: ask its operator to add them.")
    else:
        header = "NAME (give it to --to)"
        width = max(len(header), *(len(shown(s.name)) for s in sites))
        print(f"{header:<{width}}  DISPLAY NAME")
        for s in sites:
            print(f"{shown(s.name):<{width}}  {shown(s.display_name)}")
        if disabled:
            print(f"Not listed: {disabled_words(disabled)}")
    return 0


def run_transfers(args: argparse.Namespace) -> int:
    from sending_site.transfers import list_transfers, when
    from site_agent.local_state import default_state_dir
    from site_agent.terminal_text import shown

    state = args.state or default_state_dir()
    views = asyncio.run(list_transfers(state, _credential(args), args.relay))
    if args.json:
        print(json.dumps({"transfers": [v.to_json() for v in views]}))
        return 0
    if not views:
        print(f"No transfers were sent from this machine (state folder {state}).")
    for v in views:
        sent = f", sent {when(v.created_at)}" if v.created_at else ""
        whose = f" ({v.patient})" if v.patient else ""
        to = shown(v.recipient) or "an unknown trauma center"
        print(f"{v.transfer_id} to {to}{sent}{whose}")
        print(f"  {v.status}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from sending_site import journal
    from sending_site.command_audit import refusal_audited, site_audit
    from sending_site.transfers import revoke
    from site_agent.commands import audit_command
    from site_agent.local_state import default_state_dir

    state = args.state or default_state_dir()
    # Read first, as the console's page does: an id this machine never sent (or a code typed
    # in its place) is refused before anything is recorded.
    sent = journal.load(state, args.transfer_id)
    audit = site_audit(state)
    with refusal_audited(audit, "transfer-revoked", sent.transfer_id):
        outcome = asyncio.run(revoke(state, sent.transfer_id, _credential(args), args.relay))
    audit_command(audit, "transfer-revoked", transfer=sent.transfer_id, outcome_words=outcome)
    if args.json:
        print(json.dumps({"transfer_id": args.transfer_id, "outcome": outcome}))
    else:
        print(f"Transfer {args.transfer_id} {outcome}: its code and QR no longer work.")
        if outcome == "revoked":
            print("The patient's phone shows it was cancelled. To send the study again, push it.")
    return 0
