"""`trauma-relay push` and `trauma-relay reissue`: the sending hospital's command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from sending_site.transfers_cli import add_parsers as add_transfer_parsers

PAPERS = ("a4", "letter")
RETRY_FOR = 120.0  # seconds; `sending_site.preflight.RETRY_FOR`, without importing it here


def add_parsers(sub: Any) -> None:
    push = sub.add_parser(
        "push",
        help="send a study to a trauma center",
        description="Validate, encrypt and upload a study; prints the code, writes its QR.",
    )
    push.add_argument("paths", nargs="+", type=Path, help="files, folders or DICOMDIR media")
    push.add_argument("--relay", required=True, help="relay URL, e.g. https://relay.example")
    push.add_argument(
        "--to",
        required=True,
        dest="recipient",
        help="trauma center: its name or display name (trauma-relay destinations lists them)",
    )
    push.add_argument("--break-glass", metavar="REASON", help="clinician authorization reason")
    push.add_argument("--clinician", help="name of the clinician using break-glass")
    push.add_argument(
        "--qr",
        type=Path,
        metavar="FILE.png",
        help="where to write the code's QR, owner-only (default: in the state folder)",
    )
    push.add_argument("--sheet", type=Path, metavar="FILE.pdf", help="write the transfer sheet")
    push.add_argument(
        "--paper", choices=sorted(PAPERS), default="a4", help="sheet paper size (default a4)"
    )
    push.add_argument(
        "--link-qr", type=Path, metavar="FILE.png", help="write the authorization link's QR"
    )
    push.add_argument("--credential-file", help="file holding this site's relay credential")
    push.add_argument("--state", type=Path, help="this site's state folder")
    push.add_argument("--json", action="store_true", help="print one JSON object (needs --yes)")
    push.add_argument(
        "--yes", action="store_true", help="send without asking to confirm (for scripts)"
    )
    push.add_argument(
        "--skip-damaged",
        action="store_true",
        help="send the rest when some files are damaged; the trauma center is told what is missing",
    )
    push.add_argument(
        "--retry-for",
        type=float,
        default=RETRY_FOR,
        metavar="SECONDS",
        help=f"keep trying an unreachable relay this long (default {RETRY_FOR:.0f})",
    )
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
    add_transfer_parsers(sub)


def _when(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _credential(args: argparse.Namespace) -> str:
    from site_agent.credential import read_credential

    return read_credential(args.credential_file)


def _qr_path(given: Path | None, state: Path, transfer_id: str) -> Path:
    """Where the code's QR goes: where the user said, else the site's state folder (owner-only),
    never the current folder, which others may read."""
    from site_agent.local_state import site_folder

    return given or site_folder(state, "qr") / f"transfer-{transfer_id}.png"


def _write_private(path: Path, data: bytes) -> Path:
    """Write `path` owner-only (0600 from its creation: a new file renamed into place, so an
    older, wider file there is replaced, never reused). Returns its absolute path."""
    from site_agent.local_state import write_atomically

    write_atomically(path, data)
    return path.absolute()


def _write_qr(path: Path, capability: str) -> Path:
    from transfer_codes.qr import render_png

    return _write_private(path, render_png(capability))


def _write_sheet(path: Path, paper: str, **fields: Any) -> Path:
    from sending_site.sheet import TransferSheet, render

    return _write_private(path, render(TransferSheet(**fields), paper))


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before anything is sent, an output file whose folder does not exist."""
    from sending_site.errors import OutputFolderMissing

    for option, path in (("--qr", args.qr), ("--sheet", args.sheet), ("--link-qr", args.link_qr)):
        if path is None:
            continue
        if path.is_dir():
            raise OutputFolderMissing(
                f"{path} is a folder: give {option} a file name in it. Nothing was sent."
            )
        if not path.absolute().parent.is_dir():
            raise OutputFolderMissing(
                f"The folder for {option} ({path.absolute().parent}) does not exist. Nothing "
                "was sent: give a folder that exists."
            )


def _say_retrying(relay: str, delay: float, reason: str, *, after_bar: bool = False) -> None:
    """One line on stderr for each wait (below the progress bar, if one is drawn)."""
    why = f": {reason}" if reason else ""
    print(
        f"{chr(10) if after_bar else ''}The relay at {relay} could not be reached{why}. "
        f"Retrying in {delay:.0f} s.",
        file=sys.stderr,
        flush=True,
    )


def _confirm(args: argparse.Namespace, lines: list[str], question: str) -> None:
    """Show what is about to be sent and ask on the terminal, unless --yes. Raises
    `ConfirmationNeeded` where nobody can answer, `NotConfirmed` unless the answer is yes."""
    from sending_site.errors import NotConfirmed
    from sending_site.outgoing import confirmed

    if not args.json:
        print("\n".join(lines), flush=True)
    if args.yes:
        return
    sys.stdout.write(question)
    sys.stdout.flush()
    if not confirmed(sys.stdin.readline()):
        raise NotConfirmed()


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
    from sending_site import outgoing
    from sending_site.errors import ConfirmationNeeded
    from sending_site.preflight import Prepared, prepare
    from sending_site.push import Progress, PushRequest, Ready, Retrying, push
    from site_agent.client import RelayClient, RelayUnreachable
    from site_agent.local_state import default_state_dir

    problem = _break_glass_problem(args)
    if problem:
        print(f"trauma-relay: {problem}", file=sys.stderr)
        return 2
    if not args.yes and (args.json or not sys.stdin.isatty()):
        where = "with --json" if args.json else "without a terminal"
        raise ConfirmationNeeded(
            f"push asks for confirmation before sending, and cannot ask {where}. Add --yes to "
            "send without asking (for scripts). Nothing was sent."
        )
    _check_outputs(args)
    credential = _credential(args)
    state = args.state or default_state_dir()

    async def preflight() -> Prepared:
        async with RelayClient(args.relay, credential) as client:
            return await prepare(
                client,
                args.recipient,
                args.paths,
                skip_damaged=args.skip_damaged,
                retry_for=args.retry_for,
                on_wait=lambda delay, e: _say_retrying(args.relay, delay, e.reason),
            )

    try:
        prepared = asyncio.run(preflight())
    except RelayUnreachable as e:
        tried = f" It was tried for {args.retry_for:.0f} s." if args.retry_for >= 1 else ""
        raise RelayUnreachable(f"{e}{tried} Nothing was sent.", e.reason) from e
    destination = prepared.destination
    _confirm(
        args,
        outgoing.describe(prepared.collection, destination),
        outgoing.question(destination),
    )
    req = PushRequest(
        paths=args.paths,
        relay=args.relay,
        recipient=destination.name,
        credential=credential,
        state_dir=state,
        break_glass_reason=args.break_glass,
        clinician=args.clinician,
        skip_damaged=args.skip_damaged,
    )
    tty = sys.stderr.isatty() and not args.json
    qr_path: list[Path] = []
    written: dict[str, str] = {}

    def on_event(event: Ready | Progress | Retrying) -> None:
        if isinstance(event, Retrying):
            _say_retrying(args.relay, event.delay, event.reason, after_bar=tty)
        elif isinstance(event, Ready):
            qr_path.append(_write_qr(_qr_path(args.qr, state, event.transfer_id), event.capability))
            if args.sheet:
                written["sheet_pdf"] = str(
                    _write_sheet(
                        args.sheet,
                        args.paper,
                        transfer_id=event.transfer_id,
                        destination=event.recipient_display_name or destination.name,
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
                print(f"{verb} transfer {event.transfer_id} to {destination.label()}.")
                print(f"  Code:        {event.code}")
                print(f"  QR code:     {qr_path[0]} (readable only by you: it opens the study)")
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

    try:
        result = asyncio.run(push(req, on_event, prepared.collection))
    except RelayUnreachable as e:
        raise RelayUnreachable(
            f"{e} It continues where this one stopped; nothing already sent is lost.", e.reason
        ) from e
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
                    "omitted": [
                        {"path": str(p), "reason": why} for p, why in prepared.collection.omitted
                    ],
                    "recipient": destination.name,
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
        for p, why in prepared.collection.omitted:
            print(f"  LEFT OUT (damaged) {p}: {why}")
        if prepared.collection.omitted:
            print(
                f"The study went without {len(prepared.collection.omitted)} damaged file(s); "
                "the trauma center sees it is incomplete and which files are missing."
            )
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
    qr = _write_qr(_qr_path(args.qr, state, record.transfer_id), record.capability)
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
