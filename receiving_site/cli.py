"""`trauma-relay redeem`: the trauma center's command line; and `trauma-relay receiver ...`: the
receiving agent (its console and accounts, `site_agent.commands`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from receiving_site import errors
from receiving_site.settings import ReceiverSettings
from site_agent.commands import Agent, add_group


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
    p.add_argument("--relay", required=True, help="relay URL")
    p.add_argument("--calling-aet", default="TRAUMARELAY", help="our AE title toward the PACS")
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
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_redeem)

    add_receiver(sub)


RECEIVER = Agent("receiver", "receiving", ReceiverSettings, pages="receiving_site.console")


def add_receiver(sub: Any) -> Any:
    """`trauma-relay receiver console|user ...`; the group's subparsers, for more commands."""
    return add_group(
        sub, RECEIVER, help="run the receiving agent (the trauma console, its accounts)"
    )


def _read_secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Code from the transfer sheet (or scan the QR): ")
    return sys.stdin.readline()


def run_redeem(args: argparse.Namespace) -> int:
    from receiving_site.pacs import PacsAddress
    from receiving_site.preview import describe
    from receiving_site.reconcile import check_local_id
    from receiving_site.redeem import (
        Preview,
        Progress,
        RedeemRequest,
        Unlocked,
        parse_secret,
        redeem,
    )
    from site_agent.credential import read_credential
    from site_agent.local_state import default_state_dir

    if (args.confirm_local_record or args.new_local_patient) and args.local_patient_id is None:
        raise errors.LocalPatientNeedsPacs(
            "--confirm-local-record and --new-local-patient go with --local-patient-id. Nothing "
            "was done."
        )
    if args.local_patient_id is not None:
        if not args.pacs:
            raise errors.LocalPatientNeedsPacs()
        check_local_id(args.local_patient_id, args.local_issuer)  # before the code is spent
    credential = read_credential(args.credential_file)
    address = None
    if args.pacs:
        address = PacsAddress.parse(args.pacs)
        address = PacsAddress(address.ae_title, address.host, address.port, args.calling_aet)
    secret = None
    if not args.resume:
        secret = _read_secret()
        parse_secret(secret)  # a typo is reported before anything is sent
    req = RedeemRequest(
        relay=args.relay,
        credential=credential,
        state_dir=args.state or default_state_dir(),
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
    )
    quiet = args.json

    def on_event(event: Unlocked | Preview | Progress) -> None:
        if quiet:
            return
        if isinstance(event, Unlocked):
            flag = " (authorized by BREAK-GLASS)" if event.break_glass else ""
            print(f"Code accepted: transfer {event.transfer_id} from {event.sender}{flag}.")
        elif isinstance(event, Preview):
            print("\n".join(describe(event.summary)), flush=True)
        elif sys.stderr.isatty():
            state = "" if event.manifest_closed else " (sender still uploading)"
            sys.stderr.write(
                f"\r  verified {event.objects_done}/{event.objects_listed} images{state}   "
            )
            sys.stderr.flush()

    result = asyncio.run(redeem(req, on_event))
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
                }
            )
        )
    else:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        print(
            f"Delivered {result.instances} verified images ({result.bytes / 1e6:.1f} MB) to "
            f"{result.destination}. The sending hospital has been sent the receipt."
        )
        if result.note:
            print(result.note)
    return 0
