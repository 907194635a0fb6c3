"""`trauma-relay redeem`: the trauma center's command line; and `trauma-relay receiver ...`: the
receiving agent (its console and accounts, `site_agent.commands`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receiving_site import errors
from receiving_site.holds_cli import add_holds
from receiving_site.settings import ReceiverSettings
from site_agent.commands import Agent, add_group, run_console
from site_agent.relay_setting import add_relay_arguments

if TYPE_CHECKING:
    from receiving_site.reconcile import Demographics
    from receiving_site.redeem import RedeemResult
    from receiving_site.stow import StowDestination


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "redeem",
        help="redeem a transfer code and deliver the study",
        description=(
            "Reads the code (or the QR text) from standard input or a prompt, redeems it, "
            "verifies every image and stores the study in a folder or a PACS."
        ),
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the study into this folder")
    where.add_argument("--pacs", help="C-STORE into this PACS: AET@HOST:PORT")
    add_relay_arguments(p)
    p.add_argument("--calling-aet", default="TRAUMARELAY", help="our AE title toward the PACS")
    p.add_argument(
        "--associations",
        type=int,
        default=4,
        metavar="N",
        help="C-STORE over N associations at once, each reused for many images (default 4)",
    )
    p.add_argument(
        "--as-they-arrive",
        action="store_true",
        help=(
            "with --pacs: store each image as soon as it is verified (after the preview is "
            "confirmed and the patient checked with the PACS), while the rest is still "
            "arriving, instead of once the whole study is; if the transfer then fails, the "
            "PACS has part of the study and the message says so (C-STORE, or STOW-RS with "
            "--stow)"
        ),
    )
    p.add_argument(
        "--stow",
        metavar="URL",
        help=(
            "store over DICOMweb STOW-RS to this base URL (e.g. https://pacs/dicom-web) instead "
            "of C-STORE; goes with --pacs, the same PACS, which is still asked (C-FIND) "
            "whether the patient or study is already filed under someone else"
        ),
    )
    p.add_argument(
        "--stow-credential-file",
        type=Path,
        metavar="FILE",
        help="file holding the STOW-RS credential: a bearer token, or USER:PASSWORD (basic)",
    )
    p.add_argument("--resume", metavar="TRANSFER_ID", help="continue an interrupted redemption")
    p.add_argument("--credential-file", help="file holding this site's relay credential")
    p.add_argument("--state", type=Path, help="this site's state folder")
    p.add_argument(
        "--skip-identity-check",
        action="store_true",
        help=(
            "store into the PACS without first checking (C-FIND) that its patient ID and study "
            "UIDs are not already filed under another patient; only after a person reviewed a hold"
        ),
    )
    p.add_argument(
        "--local-patient-id",
        metavar="MRN",
        help=(
            "file the study under this trauma center's own patient ID (with --pacs): the ER's "
            "IDs are kept in Other Patient IDs and Original Attributes; the PACS's name and "
            "birth date for it must match the transferred patient's unless reviewed"
        ),
    )
    p.add_argument(
        "--local-issuer",
        default="",
        metavar="ISSUER",
        help="Issuer of Patient ID for --local-patient-id (this hospital's assigning authority)",
    )
    p.add_argument(
        "--confirm-local-record",
        action="store_true",
        help=(
            "after a hold: a person checked that the PACS's record for --local-patient-id is "
            "this patient despite another name or birth date; the images take the PACS's values"
        ),
    )
    p.add_argument(
        "--new-local-patient",
        action="store_true",
        help=(
            "--local-patient-id was just given to this patient and the PACS has no images for "
            "it yet; the images keep the sender's name and birth date"
        ),
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help=(
            "store without asking to confirm the preview (for scripts; without a terminal "
            "redeem refuses to run unless this is given)"
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_redeem)

    add_receiver(sub)


RECEIVER = Agent("receiver", "receiving", ReceiverSettings, pages="receiving_site.console")


def add_receiver(sub: Any) -> Any:
    """`trauma-relay receiver [console|user|holds ...]`; the group's subparsers, for more
    commands. Without a command, `receiver --config FILE` runs the agent: its trauma console,
    which redeems and imports (the same as `receiver console`)."""
    commands = add_group(
        sub, RECEIVER, help="run the receiving agent (the trauma console, its accounts)"
    )
    sub.choices[RECEIVER.command].set_defaults(run=partial(run_console, RECEIVER))
    add_holds(commands, RECEIVER)
    return commands


def _question(args: argparse.Namespace) -> str:
    where = f"the PACS {args.pacs}" if args.pacs else f"the folder {args.out}"
    return f"Is this your patient? Store the study in {where}? [y/N] "


def _filed_under(local: Demographics) -> str:
    from receiving_site.preview import date, person_name

    issuer = f" (issuer {local.issuer_of_patient_id})" if local.issuer_of_patient_id else ""
    return (
        f"Filed under this hospital's patient ID {local.patient_id}{issuer}, as "
        f"{person_name(local.patient_name)}, born {date(local.birth_date)}."
    )


WAITING = (
    "This code is being redeemed on this machine already (another window, or a second click); "
    "waiting for that to finish..."
)


def _already_delivered(result: RedeemResult, delivered_at: float) -> str:
    """What staff read when this machine had delivered the study before (another run)."""
    when = datetime.fromtimestamp(delivered_at).strftime("%Y-%m-%d %H:%M")
    return (
        f"Already delivered from this machine at {when}: {result.instances} verified images to "
        f"{result.destination}. Nothing more to do."
    )


def _review_copy(result: RedeemResult) -> str:
    """What staff read when a held study was saved for review instead of delivered."""
    return (
        f"Saved {result.instances} verified images ({result.bytes / 1e6:.1f} MB) for review in "
        f"{result.destination}. Nothing went to the PACS and the transfer stays open: the "
        "family's phone says the images are being checked. After review, import them into the "
        "PACS from this machine with the command below, adding what the review decided (for "
        "example --local-patient-id MRN --confirm-local-record, or --skip-identity-check):\n"
        f"  {result.review_command}" + (f"\n{result.note}" if result.note else "")
    )


def _stow_destination(args: argparse.Namespace) -> StowDestination | None:
    """The STOW-RS destination of `--stow`, checked before the code is read."""
    from receiving_site.pacs import MAX_ASSOCIATIONS
    from receiving_site.stow import StowDestination

    if not 1 <= args.associations <= MAX_ASSOCIATIONS:
        raise errors.BadPacsAddress(
            f"--associations: {args.associations} is not a number of associations (1 to "
            f"{MAX_ASSOCIATIONS}). Nothing was done."
        )
    if args.stow_credential_file is not None and not args.stow:
        raise errors.BadStowAddress(
            "--stow-credential-file goes with --stow, the DICOMweb server it is for. Nothing "
            "was done."
        )
    if not args.stow:
        return None
    if not args.pacs:
        raise errors.BadStowAddress(
            "--stow goes with --pacs AET@HOST:PORT, the same PACS's DICOM address: it is asked "
            "(C-FIND) whether the patient or study is already filed under someone else before "
            "anything is stored. Nothing was done."
        )
    return StowDestination(args.stow, args.stow_credential_file)


def run_redeem(args: argparse.Namespace) -> int:
    from receiving_site.pacs import PacsAddress
    from receiving_site.preview import describe
    from receiving_site.prompts import ask_yes_no, read_code
    from receiving_site.reconcile import check_local_id
    from receiving_site.redeem import (
        CONSENT_FROM_SENDER,
        Preview,
        RedeemEvent,
        RedeemRequest,
        Stored,
        Unlocked,
        Waiting,
        parse_secret,
        redeem,
    )
    from site_agent.audit import AuditLog
    from site_agent.commands import audit_command
    from site_agent.credential import read_credential
    from site_agent.local_state import default_state_dir, site_folder
    from site_agent.relay_address import relay_address
    from site_agent.relay_setting import relay_from_arguments
    from site_agent.terminal_text import shown

    # A wrong or missing address is reported before the code is asked for.
    relay = relay_address(relay_from_arguments(args))
    if (args.confirm_local_record or args.new_local_patient) and args.local_patient_id is None:
        raise errors.LocalPatientNeedsPacs(
            "--confirm-local-record and --new-local-patient go with --local-patient-id. Nothing "
            "was done."
        )
    if args.as_they_arrive and not args.pacs:
        raise errors.LocalPatientNeedsPacs(
            "--as-they-arrive goes with --pacs AET@HOST:PORT: a folder gets the study once it "
            "is whole. Nothing was done."
        )
    if args.local_patient_id is not None:
        if not args.pacs:
            raise errors.LocalPatientNeedsPacs()
        check_local_id(args.local_patient_id, args.local_issuer)  # before the code is spent
    address = None
    if args.pacs:  # a wrong address is reported first, before anything else is asked
        address = PacsAddress.parse(args.pacs)
        address = PacsAddress(address.ae_title, address.host, address.port, args.calling_aet)
    stow_destination = _stow_destination(args)
    if not args.yes and not sys.stdin.isatty():
        # Before the code is read, so before it can be spent.
        raise errors.ConfirmationNeeded()
    credential = read_credential(args.credential_file)
    secret = None
    if not args.resume:
        secret = read_code(sys.stdin, sys.stderr)
        parse_secret(secret)  # a typo is reported before anything is sent
    state_dir = args.state or default_state_dir()
    audit = AuditLog(site_folder(state_dir, RECEIVER.folder), time.time)
    to = args.pacs or str(args.out)
    req = RedeemRequest(
        relay=relay,
        credential=credential,
        state_dir=state_dir,
        secret=secret,
        resume=args.resume,
        out=args.out,
        pacs=address,
        state_given=args.state is not None,
        credential_file=args.credential_file,
        skip_identity_check=args.skip_identity_check,
        local_patient_id=args.local_patient_id,
        local_issuer=args.local_issuer,
        confirm_local_record=args.confirm_local_record,
        new_local_patient=args.new_local_patient,
        assume_yes=args.yes,
        associations=args.associations,
        stow=stow_destination,
        as_they_arrive=args.as_they_arrive,
    )
    quiet = args.json
    asking = [False]  # while the question is open, progress lines wait

    def on_event(event: RedeemEvent) -> None:
        if isinstance(event, Waiting):  # on stderr, so also with --json
            sys.stderr.write(f"{WAITING}\n")
            sys.stderr.flush()
            return
        if isinstance(event, Preview) and not args.yes:
            asking[0] = True  # the preview is shown even with --json: it is what is asked
            lines = "\n".join(describe(event.summary, event.sender, event.break_glass))
            print(lines, file=sys.stderr if quiet else sys.stdout, flush=True)
            return
        if isinstance(event, Unlocked):  # the study is open to this machine: an access
            audit_command(
                audit,
                "study-redeemed",
                transfer=event.transfer_id,
                to=to,
                break_glass=event.break_glass,
            )
        if quiet:
            return
        if isinstance(event, Unlocked):
            flag = " (authorized by BREAK-GLASS)" if event.break_glass else ""
            sender = shown(event.sender)
            print(f"Code accepted: transfer {event.transfer_id} from {sender}{flag}.")
            if event.consent_from_sending_site:
                print(CONSENT_FROM_SENDER)
        elif isinstance(event, Preview):
            print("\n".join(describe(event.summary, event.sender, event.break_glass)), flush=True)
        elif sys.stderr.isatty() and not asking[0]:
            if isinstance(event, Stored):
                line = f"stored {event.images_done}/{event.images_total} images in the PACS"
            else:
                state = "" if event.manifest_closed else " (sender still uploading)"
                line = f"verified {event.objects_done}/{event.objects_listed} images{state}"
            sys.stderr.write(f"\r  {line}   ")
            sys.stderr.flush()

    async def confirm(preview: Preview) -> bool:
        try:
            return await ask_yes_no(_question(args), sys.stdin, sys.stderr)
        finally:
            asking[0] = False

    result = asyncio.run(redeem(req, on_event, None if args.yes else confirm))
    audit_command(
        audit,
        "study-imported" if args.pacs else "study-exported",
        transfer=result.transfer_id,
        instances=result.instances,
        destination=result.destination,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "transfer_id": result.transfer_id,
                    "instances": result.instances,
                    "bytes": result.bytes,
                    "destination": result.destination,
                    "break_glass": result.break_glass,
                    "decompressed": result.decompressed,
                    "local_patient_id": args.local_patient_id,
                    "filed_under": (
                        None
                        if result.filed_under is None
                        else {
                            "patient_id": result.filed_under.patient_id,
                            "issuer_of_patient_id": result.filed_under.issuer_of_patient_id,
                            "patient_name": result.filed_under.patient_name,
                            "birth_date": result.filed_under.birth_date,
                        }
                    ),
                    "review_copy": bool(result.review_command),
                    "import_command": result.review_command or None,
                    "delivered_before": result.delivered_before,
                }
            )
        )
    elif result.delivered_before is not None:
        print(_already_delivered(result, result.delivered_before))
    elif result.review_command:
        print(_review_copy(result))
    else:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        print(
            f"Delivered {result.instances} verified images ({result.bytes / 1e6:.1f} MB) to "
            f"{result.destination}. The sending hospital has been sent the receipt."
        )
        if result.filed_under is not None:
            print(_filed_under(result.filed_under))
        if result.note:
            print(result.note)
    return 0
