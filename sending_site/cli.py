"""`trauma-relay push` and `trauma-relay reissue`: the sending hospital's command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import Any

PAPERS = ("a4", "letter")


def add_parsers(sub: Any) -> None:
    push = sub.add_parser(
        "push",
        help="send a study to a trauma center",
        description="Validate, encrypt and upload a study; prints the code, writes its QR.",
    )
    push.add_argument("paths", nargs="+", type=Path, help="files, folders or DICOMDIR media")
    push.add_argument("--relay", required=True, help="relay URL, e.g. https://relay.example")
    push.add_argument("--to", required=True, dest="recipient", help="receiving site name")
    push.add_argument("--break-glass", metavar="REASON", help="clinician authorization reason")
    push.add_argument("--clinician", help="name of the clinician using break-glass")
    push.add_argument("--qr", type=Path, help="where to write the QR PNG")
    push.add_argument("--sheet", type=Path, metavar="FILE.pdf", help="write the transfer sheet")
    push.add_argument(
        "--paper", choices=sorted(PAPERS), default="a4", help="sheet paper size (default a4)"
    )
    push.add_argument(
        "--link-qr", type=Path, metavar="FILE.png", help="write the authorization link's QR"
    )
    push.add_argument("--credential-file", help="file holding this site's relay credential")
    push.add_argument("--state", type=Path, help="this site's state folder")
    push.add_argument("--json", action="store_true", help="print one JSON object")
    push.set_defaults(run=run_push)

    reissue = sub.add_parser(
        "reissue",
        help="give a transfer a fresh code (the old one stops working)",
        description="Re-issue the code of a transfer this site sent, without re-uploading.",
    )
    reissue.add_argument("transfer_id")
    reissue.add_argument("--relay", help="relay URL (default: the one the transfer used)")
    reissue.add_argument("--qr", type=Path, help="where to write the new QR PNG")
    reissue.add_argument("--sheet", type=Path, metavar="FILE.pdf", help="write a new sheet")
    reissue.add_argument(
        "--paper", choices=sorted(PAPERS), default="a4", help="sheet paper size (default a4)"
    )
    reissue.add_argument("--credential-file", help="file holding this site's relay credential")
    reissue.add_argument("--state", type=Path, help="this site's state folder")
    reissue.add_argument("--json", action="store_true", help="print one JSON object")
    reissue.set_defaults(run=run_reissue)
    _add_sender(sub)


def _add_sender(sub: Any) -> None:
    sender = sub.add_parser(
        "sender",
        help="run the sending site's agent",
        description="The sending site's agent: a DICOM node the ER's PACS and scanners send to.",
    )
    commands = sender.add_subparsers(dest="sender_command", required=True)
    inbox = commands.add_parser(
        "inbox",
        help="receive studies over DICOM into a spool folder",
        description="Receive studies (C-STORE, C-ECHO) into a spool folder and index them.",
    )
    inbox.add_argument("--ae-title", default="TRAUMARELAY", help="this node's AE title")
    inbox.add_argument("--port", type=int, default=11112, help="DICOM port (default 11112)")
    inbox.add_argument(
        "--bind",
        default="0.0.0.0",  # noqa: S104 - the PACS and the scanners must reach the agent
        metavar="HOST",
        help="listen address (default: all)",
    )
    inbox.add_argument("--spool", type=Path, required=True, help="folder for received images")
    inbox.set_defaults(run=run_sender_inbox)


def run_sender_inbox(args: argparse.Namespace) -> int:
    from sending_site.inbox.service import run
    from sending_site.inbox.settings import InboxSettings

    settings = InboxSettings(
        spool=args.spool, ae_title=args.ae_title, host=args.bind, port=args.port
    )
    return run(settings)


def _when(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _credential(args: argparse.Namespace) -> str:
    from site_agent.credential import read_credential

    return read_credential(args.credential_file)


def _write_qr(path: Path, capability: str) -> Path:
    from transfer_codes.qr import render_png

    path.write_bytes(render_png(capability))
    return path


def _write_sheet(path: Path, paper: str, **fields: Any) -> Path:
    from sending_site.sheet import TransferSheet, render

    path.write_bytes(render(TransferSheet(**fields), paper))
    return path


def _break_glass_problem(args: argparse.Namespace) -> str | None:
    if args.break_glass is None:
        if args.clinician is not None:
            return "--clinician is only used with --break-glass."
        return None
    reason = args.break_glass.strip()
    if len(reason) < 15 or len(reason.split()) < 3:
        return (
            "a break-glass reason must be a sentence saying why nobody can consent, "
            'e.g. "Unconscious after a fall, no family reachable."'
        )
    if not (args.clinician or "").strip():
        return "break-glass needs the name of the clinician who authorizes: add --clinician NAME."
    return None


def run_push(args: argparse.Namespace) -> int:
    from sending_site.push import Progress, PushRequest, Ready, push
    from site_agent.local_state import default_state_dir

    problem = _break_glass_problem(args)
    if problem:
        print(f"trauma-relay: {problem}", file=sys.stderr)
        return 2
    req = PushRequest(
        paths=args.paths,
        relay=args.relay,
        recipient=args.recipient,
        credential=_credential(args),
        state_dir=args.state or default_state_dir(),
        break_glass_reason=args.break_glass,
        clinician=args.clinician,
    )
    tty = sys.stderr.isatty() and not args.json
    qr_path: list[Path] = []
    written: dict[str, str] = {}

    def on_event(event: Ready | Progress) -> None:
        if isinstance(event, Ready):
            qr_path.append(
                _write_qr(args.qr or Path(f"transfer-{event.transfer_id}.png"), event.capability)
            )
            if args.sheet:
                written["sheet_pdf"] = str(
                    _write_sheet(
                        args.sheet,
                        args.paper,
                        transfer_id=event.transfer_id,
                        destination=event.recipient_display_name or args.recipient,
                        sender=event.sender_display_name,
                        code=event.code,
                        capability=event.capability,
                        expires_at=event.expires_at,
                        break_glass=event.break_glass,
                    )
                )
            if args.link_qr:
                written["link_qr_png"] = str(_write_qr(args.link_qr, event.authorization_url))
            for old in event.replaced:
                # On stderr with --json: stdout carries only the one JSON object.
                print(
                    f"Transfer {old.transfer_id} was given up ({old.reason}): its code "
                    f"{old.code} no longer works. Give the patient the new code below.",
                    file=sys.stderr if args.json else sys.stdout,
                )
            if not args.json:
                verb = "Resuming" if event.resumed else "Sending"
                print(f"{verb} transfer {event.transfer_id} to {args.recipient}.")
                print(f"  Code:        {event.code}")
                print(f"  QR code:     {qr_path[0]}")
                if "sheet_pdf" in written:
                    print(f"  Transfer sheet: {written['sheet_pdf']} (print it for the patient)")
                print(f"  Patient authorization link: {event.authorization_url}")
                if "link_qr_png" in written:
                    print(f"  Link QR (for the patient's phone): {written['link_qr_png']}")
                if event.break_glass:
                    print("  Authorized by BREAK-GLASS (recorded in the audit trail).")
                print(f"  Expires:     {_when(event.expires_at)}")
                sys.stdout.flush()
        elif tty:
            mb = 1024 * 1024
            width = 30
            filled = int(width * event.bytes_done / max(event.bytes_total, 1))
            sys.stderr.write(
                f"\r  [{'#' * filled}{'.' * (width - filled)}] {event.objects_done}/"
                f"{event.objects_total} images, {event.bytes_done / mb:.1f}/"
                f"{event.bytes_total / mb:.1f} MB"
            )
            sys.stderr.flush()

    result = asyncio.run(push(req, on_event))
    if tty:
        sys.stderr.write("\n")
    if args.json:
        print(
            json.dumps(
                {
                    "transfer_id": result.ready.transfer_id,
                    "code": result.ready.code,
                    "qr_png": str(qr_path[0]),
                    "authorization_url": result.ready.authorization_url,
                    "expires_at": result.ready.expires_at,
                    "instances": result.instances,
                    "bytes": result.bytes,
                    "resumed": result.ready.resumed,
                    "break_glass": result.ready.break_glass,
                    "skipped": [{"path": str(p), "reason": why} for p, why in result.skipped],
                    "notes": [{"path": str(p), "note": note} for p, note in result.notes],
                    "replaced": [
                        {"transfer_id": old.transfer_id, "code": old.code, "reason": old.reason}
                        for old in result.ready.replaced
                    ],
                    **written,
                }
            )
        )
    else:
        print(f"Uploaded {result.instances} images ({result.bytes / 1e6:.1f} MB); upload complete.")
        for p, note in result.notes:
            print(f"  {p}: {note}")
        for p, why in result.skipped:
            print(f"  skipped {p}: {why}")
        if not result.ready.break_glass:
            print("Next: the patient or family opens the authorization link and authorizes.")
    return 0


def run_reissue(args: argparse.Namespace) -> int:
    from sending_site import journal, phone
    from sending_site.errors import TransferAbandoned
    from sending_site.push import install_locks
    from site_agent.client import RelayClient
    from site_agent.local_state import default_state_dir
    from transfer_codes.capability import Capability
    from transfer_codes.codes import RedemptionCode

    state = args.state or default_state_dir()
    record = journal.load(state, args.transfer_id)
    if record.abandoned:
        raise TransferAbandoned(
            f"Transfer {record.transfer_id} was given up ({record.abandoned}), so its code "
            "cannot be re-issued. Send the study again with trauma-relay push."
        )
    record.code = RedemptionCode.generate(record.locator).compact()
    record.capability = Capability.generate(record.transfer_id).to_text()
    credential = _credential(args)
    # Saved first: if the relay takes the new code and we are interrupted, the code is not lost.
    journal.save(state, record)

    async def go() -> dict[str, Any]:
        async with RelayClient(args.relay or record.relay, credential) as client:
            await install_locks(client, record, "reissue")
            if record.phone_key:  # the patient's phone shows the new code from now on
                await phone.upload(client, record, None)
            return await client.status(record.transfer_id)

    status = asyncio.run(go())
    qr = _write_qr(args.qr or Path(f"transfer-{record.transfer_id}.png"), record.capability)
    code = RedemptionCode.parse(record.code).grouped()
    written: dict[str, str] = {}
    if args.sheet:
        written["sheet_pdf"] = str(
            _write_sheet(
                args.sheet,
                args.paper,
                transfer_id=record.transfer_id,
                destination=status["recipient"]["display_name"] or record.recipient,
                sender=status["sender"]["display_name"],
                code=code,
                capability=record.capability,
                expires_at=record.expires_at,
                break_glass=bool(status["break_glass"]),
            )
        )
    if args.json:
        print(
            json.dumps(
                {"transfer_id": record.transfer_id, "code": code, "qr_png": str(qr), **written}
            )
        )
    else:
        print(f"New code for transfer {record.transfer_id}: {code}")
        print(f"  QR code: {qr}")
        if written:
            print(f"  Transfer sheet: {written['sheet_pdf']}")
        print("The old code and QR no longer work.")
    return 0
