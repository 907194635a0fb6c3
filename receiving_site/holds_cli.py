"""`trauma-relay receiver holds`: the holds queue at the command line, as the console shows it.
Each held study with its reason, both sides of the patient, and each choice as the exact command
that carries it out (`holds_queue.request`, the redemption the console runs too);
`holds discard TRANSFER_ID` removes a held study's images from this machine, audited as the
operating-system user. Building the command line imports only argparse."""

from __future__ import annotations

import argparse
import shlex
from functools import partial
from typing import Any

from site_agent.commands import Agent
from site_agent.settings.arguments import add_arguments


def add_holds(commands: Any, agent: Agent) -> None:
    """Add `holds` and `holds discard TRANSFER_ID` to the receiver's commands."""
    holds = commands.add_parser(
        "holds",
        help="list the studies held for review, with what to do about each",
        description="List the studies held on this machine, with the commands that resolve each.",
    )
    add_arguments(holds)
    holds.set_defaults(run=partial(run_holds, agent))
    actions = holds.add_subparsers(dest="holds_command", metavar="ACTION")
    discard = actions.add_parser(
        "discard",
        help="remove a held study's images and key from this machine",
        description="Remove a held study's images and key from this machine (audited).",
    )
    discard.add_argument("transfer_id", help="the held transfer, as `holds` lists it")
    add_arguments(discard)
    discard.set_defaults(run=partial(run_discard, agent))


def _discard_command(transfer_id: str, state_folder: str) -> str:
    words = ["trauma-relay", "receiver", "holds", "discard", transfer_id]
    return shlex.join([*words, "--set", f"state.folder={state_folder}"])


def run_holds(agent: Agent, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from receiving_site import hold_record, holds, holds_queue, state
    from receiving_site.holds_queue import Choice, Decision, Place
    from site_agent.commands import settings_of

    settings = settings_of(agent, args)
    state_dir = settings.state.folder
    found = hold_record.held_studies(state_dir)
    if not found:
        print("No study is held on this machine.")
        return 0
    place = Place.of(settings, "")  # its STOW-RS and C-STORE settings go into each command
    credential_file = settings.relay.credential_file
    for held in found:
        relay = state.load_key(state_dir, held.transfer_id).relay
        print(f"{held.transfer_id}: {held.reason.value}.")
        print(f"  {held.sentence}")
        if held.stored_in_pacs:
            print(
                f"  {held.stored_in_pacs} of its {held.image_count} images are already in the "
                "PACS, so the study there is INCOMPLETE: tell radiology. Discarding it here "
                "does not remove them from the PACS."
            )
        if held.theirs is not None:
            print("\n".join(holds.table(held.ours, held.theirs, held.sender)))
        for choice in holds_queue.choices(held):
            if choice is Choice.DISCARD:
                command = _discard_command(held.transfer_id, str(state_dir))
            else:
                mrn = "MRN" if choice is Choice.OTHER_RECORD else held.local_patient_id or "MRN"
                decision = Decision(choice, local_patient_id=mrn, folder=state_dir / "review")
                req = holds_queue.request(held, decision, place, relay)
                if credential_file is not None:
                    req = replace(req, credential_file=str(credential_file))
                command = req.resume_command(held.transfer_id)
            print(f"  {choice.name.lower().replace('_', ' ')}: {command}")
        print()
    return 0


def run_discard(agent: Agent, args: argparse.Namespace) -> int:
    import asyncio
    import time

    from receiving_site import holds_queue
    from receiving_site.holds_queue import Choice, Decision, Place
    from site_agent.audit import AuditLog
    from site_agent.commands import _operator, settings_of  # who, as account changes say
    from site_agent.credential import read_credential
    from site_agent.errors import AgentError
    from site_agent.local_state import site_folder

    settings = settings_of(agent, args)
    state_dir = settings.state.folder
    audit = AuditLog(site_folder(state_dir, agent.folder), time.time)
    try:  # to tell the relay, so that the ER sees the discard; without it, said at the end
        credential = read_credential(settings.relay.credential_file)
    except AgentError:
        credential = ""
    decided = asyncio.run(
        holds_queue.decide(
            Place(state_dir, credential),
            args.transfer_id,
            Decision(Choice.DISCARD),
            audit=audit,
            who=_operator(),
            where="local",
        )
    )
    from receiving_site.console.holds import told_sender

    print(
        f"The held study {decided.held.transfer_id} was removed from this machine. "
        + told_sender(decided.sender_told)
    )
    return 0
