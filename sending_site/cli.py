"""`trauma-relay push` and `trauma-relay reissue`: the sending hospital's command line; and
`trauma-relay sender ...`: the sending agent (its console and accounts, `site_agent.commands`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sending_site.inbox.follow import SpooledStudy
    from sending_site.sheet import TransferSheet
    from site_agent.audit import AuditLog

from sending_site.settings import SenderSettings
from sending_site.transfers_cli import add_parsers as add_transfer_parsers
from site_agent.commands import Agent, add_group
from site_agent.relay_setting import add_relay_arguments

PAPERS = ("a4", "letter")
_SITE_PHONE_HELP = (
    "this hospital's phone number for the transfer sheet (default: TRAUMA_RELAY_SITE_PHONE)"
)
RETRY_FOR = 120.0  # seconds; `sending_site.preflight.RETRY_FOR`, without importing it here
STABLE_AFTER = 30.0  # seconds; the agent's `spool.stable_age` default


def add_parsers(sub: Any) -> None:
    push = sub.add_parser(
        "push",
        help="send a study to a trauma center",
        description="Validate, encrypt and upload a study; prints the code, writes its QR.",
    )
    push.add_argument("paths", nargs="*", type=Path, help="files, folders or DICOMDIR media")
    add_relay_arguments(push)
    push.add_argument(
        "--from-inbox",
        type=Path,
        metavar="SPOOL",
        help="send a study from the DICOM inbox's spool folder (with --study), following it "
        "while images are still arriving",
    )
    push.add_argument("--study", metavar="UID", help="the Study Instance UID, with --from-inbox")
    push.add_argument(
        "--inbox-pacs",
        metavar="AET@HOST:PORT",
        help="with --from-inbox: the hospital PACS; the study is complete only once every series "
        "it holds has arrived whole (it must allow C-FIND from TRAUMARELAY)",
    )
    push.add_argument(
        "--stable-after",
        type=float,
        default=STABLE_AFTER,
        metavar="SECONDS",
        help="with --from-inbox: the study is complete once no image arrived for this long "
        f"(default {STABLE_AFTER:.0f})",
    )
    push.add_argument(
        "--follow-for",
        type=float,
        metavar="SECONDS",
        help="with --from-inbox: stop following after this long; what has arrived is sent and "
        "the trauma center is told the study is incomplete (default: until it is complete)",
    )
    push.add_argument(
        "--to",
        required=True,
        dest="recipient",
        help="trauma center: its name or display name (trauma-relay destinations lists them)",
    )
    push.add_argument("--break-glass", metavar="REASON", help="clinician authorization reason")
    push.add_argument("--clinician", help="name of the clinician using break-glass")
    push.add_argument(
        "--replace",
        action="store_true",
        help="send anew even if this study already went to this trauma center (revokes it)",
    )
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
    push.add_argument("--site-phone", help=_SITE_PHONE_HELP)
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
    reissue.add_argument("--site-phone", help=_SITE_PHONE_HELP)
    reissue.add_argument("--credential-file", help="file holding this site's relay credential")
    reissue.add_argument("--state", type=Path, help="this site's state folder")
    reissue.add_argument("--json", action="store_true", help="print one JSON object")
    reissue.set_defaults(run=run_reissue)
    add_transfer_parsers(sub)

    glass = sub.add_parser(
        "break-glass",
        help="authorize a transfer already sent by break-glass (same code, no re-upload)",
        description="A clinician authorizes a transfer this site sent, when nobody can consent.",
    )
    glass.add_argument("transfer_id")
    glass.add_argument("--reason", required=True, help="why nobody can consent (a sentence)")
    glass.add_argument("--clinician", required=True, help="name of the authorizing clinician")
    glass.add_argument("--relay", help="relay URL (default: the one the transfer used)")
    glass.add_argument("--credential-file", help="file holding this site's relay credential")
    glass.add_argument("--state", type=Path, help="this site's state folder")
    glass.add_argument("--json", action="store_true", help="print one JSON object")
    glass.set_defaults(run=run_break_glass)
    commands = add_sender(sub)
    _add_inbox(commands)
    _add_report(commands)


def _add_inbox(commands: Any) -> None:
    """`trauma-relay sender inbox`: the agent's DICOM node, on its own. Its settings are the
    agent's (`--config`, `--set`); the flags are short for the `dicom` and `spool` settings."""
    from site_agent.settings.arguments import add_arguments

    inbox = commands.add_parser(
        "inbox",
        help="receive studies over DICOM into a spool folder",
        description="Receive studies (C-STORE, C-ECHO) into a spool folder and index them.",
    )
    inbox.add_argument("--ae-title", help="this node's AE title (dicom.ae_title)")
    inbox.add_argument("--port", type=int, help="DICOM port (dicom.listen's port)")
    inbox.add_argument("--bind", metavar="HOST", help="listen address (dicom.listen's host)")
    inbox.add_argument("--spool", type=Path, help="folder for received images (spool.folder)")
    add_arguments(inbox)
    inbox.set_defaults(run=run_sender_inbox)


def _add_report(commands: Any) -> None:
    """`trauma-relay sender report`: a PDF report into a study in the inbox."""
    report = commands.add_parser(
        "report",
        help="add a PDF report to a study in the DICOM inbox, to travel with its images",
        description="Add a PDF report to a study the inbox received: it becomes an "
        "Encapsulated PDF instance of the same patient and study, sent with the images.",
    )
    report.add_argument("pdf", type=Path, metavar="FILE.pdf", help="the report, as a PDF")
    report.add_argument("--spool", type=Path, required=True, help="the inbox's spool folder")
    report.add_argument("--study", required=True, metavar="UID", help="the Study Instance UID")
    report.add_argument("--title", help="the report's title (default: a report from the ER)")
    report.set_defaults(run=run_sender_report)


def run_sender_report(args: argparse.Namespace) -> int:
    from sending_site.inbox.deposit import add_report
    from sending_site.report import DEFAULT_TITLE

    try:
        pdf = args.pdf.read_bytes()
    except OSError as e:
        from sending_site.errors import ReportNotPdf

        raise ReportNotPdf(f"{args.pdf} cannot be read ({e.strerror or e}).") from e
    asyncio.run(add_report(args.spool, args.study, pdf, args.title or DEFAULT_TITLE))
    print(
        f"Added the report {args.pdf.name} to the study: it goes with its images when the "
        "study is sent, and with a transfer of it that is still following the study."
    )
    return 0


def run_sender_inbox(args: argparse.Namespace) -> int:
    from sending_site.command_audit import site_audit
    from sending_site.inbox.audited import NodeAudit
    from sending_site.inbox.service import run
    from sending_site.settings import inbox_settings
    from site_agent.commands import settings_of
    from site_agent.settings import HostPort, replaced

    # Unchecked: the inbox alone needs no relay; `inbox_settings` checks what it uses.
    settings = settings_of(SENDER, args, check=False)
    listen = settings.dicom.listen
    listen = HostPort(args.bind or listen.host, listen.port if args.port is None else args.port)
    settings = replaced(settings, "dicom.listen", listen)
    if args.ae_title is not None:
        settings = replaced(settings, "dicom.ae_title", args.ae_title)
    if args.spool is not None:
        settings = replaced(settings, "spool.folder", args.spool)
    audit = site_audit(Path(settings.state.folder))
    return run(inbox_settings(settings), NodeAudit(audit))


SENDER = Agent(
    "sender",
    "sending",
    SenderSettings,
    pages="sending_site.console",
    service="sending_site.agent.service:run",
)


def add_sender(sub: Any) -> Any:
    """`trauma-relay sender console|user ...`; the group's subparsers, for more commands."""
    return add_group(
        sub, SENDER, help="run the sending agent (its DICOM node and ER console; its accounts)"
    )


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


def _write_sheet(path: Path, paper: str, sheet: TransferSheet, audit: AuditLog) -> Path:
    """Write the transfer sheet to `path`, then record it in `audit` as the console records
    one printed (`sheet-printed`: the transfer, never its code); a sheet not written is not."""
    from sending_site.sheet import render
    from site_agent.commands import audit_command

    written = _write_private(path, render(sheet, paper))
    audit_command(audit, "sheet-printed", transfer=sheet.transfer_id)
    return written


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


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before anything is sent, files that could not be written once the code exists:
    --qr (the QR goes to the state folder unless given), --sheet and --link-qr."""
    from sending_site.errors import OutputUnwritable

    wanted = {"--qr": args.qr, "--sheet": args.sheet}
    wanted["--link-qr"] = getattr(args, "link_qr", None)
    for option, path in wanted.items():
        if path is None:
            continue
        folder = path.parent
        given = f"{option} {path}"
        if path.is_dir():
            raise OutputUnwritable(
                f"{given}: {path} is a folder; give a file name. Nothing was sent."
            )
        if not folder.is_dir():
            raise OutputUnwritable(
                f"{given}: the folder {folder} does not exist. Create it or choose another "
                "place; nothing was sent."
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputUnwritable(
                f"{given}: this user cannot write in {folder}. Choose another place; nothing "
                "was sent."
            )


def _checked_relay(address: str) -> str:
    """The relay address, checked before anything else: plain http to another machine is
    refused (`require_secure`)."""
    from site_agent.relay_address import relay_address, require_secure

    relay = relay_address(address)
    require_secure(relay)
    return relay


def _break_glass_problem(reason: str | None, clinician: str | None) -> str | None:
    from sending_site.break_glass import problem_with

    return problem_with(reason, clinician)


def run_push(args: argparse.Namespace) -> int:
    from sending_site import outgoing, refusals
    from sending_site.command_audit import break_glass_audited, break_glass_not_added, site_audit
    from sending_site.errors import BreakGlassIncomplete, ConfirmationNeeded
    from sending_site.inbox.handoff import spooled_study
    from sending_site.preflight import Prepared, prepare
    from sending_site.push import (
        BreakGlassAnswered,
        PushEvent,
        PushRequest,
        PushResult,
        Ready,
        Retrying,
        push,
    )
    from sending_site.sheet import TransferSheet, site_phone
    from sending_site.stretching import in_background
    from site_agent.client import RelayClient, RelayUnreachable
    from site_agent.commands import audit_command
    from site_agent.local_state import default_state_dir
    from site_agent.local_time import how_long, local_time
    from site_agent.relay_setting import relay_from_arguments

    relay = _checked_relay(relay_from_arguments(args))
    problem = _break_glass_problem(args.break_glass, args.clinician)
    if problem:
        raise BreakGlassIncomplete(problem)
    phone = site_phone(args.site_phone)
    if not args.yes and (args.json or not sys.stdin.isatty()):
        where = "with --json" if args.json else "without a terminal"
        raise ConfirmationNeeded(
            f"push asks for confirmation before sending, and cannot ask {where}. Add --yes to "
            "send without asking (for scripts). Nothing was sent."
        )
    _check_outputs(args)
    inbox = _inbox_study(args)
    credential = _credential(args)
    state = args.state or default_state_dir()
    audit = site_audit(state)
    stretched = in_background()  # while the study is read and checked

    async def preflight() -> Prepared:
        paths = args.paths
        if inbox is not None:
            paths = await spooled_study(inbox.settings.spool, inbox.study_instance_uid)
        async with RelayClient(relay, credential) as client:
            return await prepare(
                client,
                args.recipient,
                paths,
                skip_damaged=args.skip_damaged,
                retry_for=args.retry_for,
                on_wait=lambda delay, e: _say_retrying(relay, delay, e.reason),
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
        paths=[i.path for i in prepared.collection.instances] if inbox else args.paths,
        relay=relay,
        recipient=destination.name,
        credential=credential,
        state_dir=state,
        break_glass_reason=args.break_glass,
        clinician=args.clinician,
        replace=args.replace,
        skip_damaged=args.skip_damaged,
        source=inbox,
        stretched=stretched,
    )
    tty = sys.stderr.isatty() and not args.json
    instances = prepared.collection.instances  # so far, when following a study still arriving
    qr_path: list[Path] = []
    written: dict[str, str] = {}

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Retrying):
            _say_retrying(relay, event.delay, event.reason, after_bar=tty)
        elif isinstance(event, BreakGlassAnswered):
            # At once, not with the code: a push stopped before the code is shown (Ctrl-C, the
            # relay out of reach, a refusal) has sent the break-glass already.
            if event.outcome == "success":
                break_glass_audited(audit, event.transfer_id, args.clinician, already=False)
            else:
                break_glass_not_added(
                    audit, event.transfer_id, args.clinician, outcome=event.outcome, why=event.why
                )
        elif isinstance(event, Ready):
            audit_command(
                audit,
                "transfer-started",
                transfer=event.transfer_id,
                study=next((i.study_instance_uid for i in instances), ""),
                images=len(instances),
                recipient=destination.name,
                resumed=event.resumed,
                break_glass=event.break_glass,
            )
            # There before this push (added by this one: recorded when the relay answered); not
            # when the family had authorized.
            if args.break_glass and event.break_glass and not event.break_glass_added:
                break_glass_audited(audit, event.transfer_id, args.clinician, already=True)
            # A code a re-issue's lost answer left (resumed here) may not be the relay's: no QR,
            # no sheet, and it is not shown; a new code is given instead (`reissue`).
            if event.code_confirmed:
                qr = _write_qr(_qr_path(args.qr, state, event.transfer_id), event.capability)
                qr_path.append(qr)
            if args.sheet and event.code_confirmed:
                sheet = TransferSheet(
                    transfer_id=event.transfer_id,
                    destination=event.recipient_display_name or destination.name,
                    sender=event.sender_display_name,
                    site_phone=phone,
                    code=event.code,
                    capability=event.capability,
                    relay=relay,
                    expires_at=event.expires_at,
                    break_glass=event.break_glass,
                    awaiting_authorization=not event.authorized,
                    study_description=event.study_description,
                    series_count=event.series_count,
                    instance_count=event.instance_count,
                )
                written["sheet_pdf"] = str(_write_sheet(args.sheet, args.paper, sheet, audit))
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
                if event.uploaded_before:
                    verb = "The relay already holds all of this study:"
                print(f"{verb} transfer {event.transfer_id} to {destination.label()}.")
                if event.code_confirmed:
                    print(f"  Code:        {event.code}")
                    print(f"  QR code:     {qr_path[0]} (readable only by you: it opens the study)")
                else:
                    print(f"  Code:        {refusals.unconfirmed(event.transfer_id).cli}")
                if "sheet_pdf" in written:
                    print(f"  Transfer sheet: {written['sheet_pdf']} (print it for the patient)")
                print(f"  Patient authorization link: {event.authorization_url}")
                if "link_qr_png" in written:
                    print(f"  Link QR (for the patient's phone): {written['link_qr_png']}")
                if event.break_glass:
                    print("  Authorized by BREAK-GLASS (recorded in the audit trail).")
                print(f"  Expires:     {local_time(event.expires_at)}")
                if inbox is not None:
                    print(
                        "  Images still arriving are sent too; the upload ends once none has "
                        f"arrived for {how_long(args.stable_after)}."
                    )
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

    async def send() -> PushResult:
        try:
            return await push(req, on_event, prepared.collection)
        finally:
            if inbox is not None:
                await inbox.close()

    try:
        result = asyncio.run(send())
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
                    "code": result.ready.code if result.ready.code_confirmed else None,
                    "code_confirmed": result.ready.code_confirmed,
                    "qr_png": str(qr_path[0]) if qr_path else None,
                    "authorization_url": result.ready.authorization_url,
                    "expires_at": result.ready.expires_at,
                    "instances": result.instances,
                    "bytes": result.bytes,
                    "resumed": result.ready.resumed,
                    "uploaded_before": result.ready.uploaded_before,
                    "incomplete": result.incomplete,
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
        if result.ready.uploaded_before:
            print(f"Nothing uploaded again: the relay holds all {result.instances} images.")
        else:
            done = f"{result.instances} images ({result.bytes / 1e6:.1f} MB)"
            print(f"Uploaded {done}; upload complete.")
        if result.incomplete:
            print(
                "Stopped following the study before it was complete: the trauma center is "
                "told it is incomplete and will not store it. Send the whole study again once "
                "it has arrived (add --replace)."
            )
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
        by = result.ready.authorized_by
        if by in ("patient", "family"):
            print(
                f"Already authorized by the {by}"
                + ("; break-glass was not needed." if args.break_glass else ".")
            )
        elif not result.ready.break_glass:
            print("Next: the patient or family opens the authorization link and authorizes.")
    return 0


def _inbox_study(args: argparse.Namespace) -> SpooledStudy | None:
    """The study `--from-inbox SPOOL --study UID` names, or None without --from-inbox; raises
    `PushArgumentsInvalid` when the files to send are named twice or not at all."""
    from sending_site.errors import PushArgumentsInvalid
    from sending_site.inbox.follow import SpooledStudy
    from sending_site.inbox.settings import InboxSettings, PacsNode

    if args.from_inbox is None:
        if args.study or args.inbox_pacs or args.follow_for is not None or not args.paths:
            raise PushArgumentsInvalid()
        return None
    if args.paths or not args.study:
        raise PushArgumentsInvalid()
    settings = InboxSettings(
        spool=args.from_inbox,
        stable_after=args.stable_after,
        pacs=PacsNode.parse(args.inbox_pacs) if args.inbox_pacs else None,
    ).validated()
    return SpooledStudy(settings, args.study, follow_for=args.follow_for)


def run_reissue(args: argparse.Namespace) -> int:
    from sending_site import journal
    from sending_site.command_audit import refusal_audited, site_audit
    from sending_site.reissue import PHONE_NOT_UPDATED, reissue, sheet_of
    from sending_site.sheet import site_phone
    from site_agent.commands import audit_command
    from site_agent.local_state import default_state_dir
    from transfer_codes.codes import RedemptionCode

    given_relay = _checked_relay(args.relay) if args.relay else None
    phone_number = site_phone(args.site_phone)
    _check_outputs(args)
    state = args.state or default_state_dir()
    # Read first, as the console's page does: an id this machine never sent (or a code typed
    # in its place) is refused before anything is recorded.
    sent = journal.load(state, args.transfer_id)
    if given_relay is None:  # the journal's relay, checked (and warned about) like a given one
        given_relay = _checked_relay(sent.relay)
    audit = site_audit(state)
    with refusal_audited(audit, "code-reissued", sent.transfer_id):
        done = asyncio.run(reissue(state, sent.transfer_id, given_relay, _credential(args)))
    phone = {} if done.phone_updated else {"phone": "not-updated"}
    audit_command(audit, "code-reissued", transfer=sent.transfer_id, **phone)
    record = done.record
    qr = _write_qr(_qr_path(args.qr, state, record.transfer_id), record.capability)
    code = RedemptionCode.parse(record.code).grouped()
    written: dict[str, str] = {}
    # The relay took the code, but its status (which the sheet needs) could not be read after.
    no_sheet = args.sheet is not None and done.status is None
    if args.sheet and done.status is not None:
        sheet = sheet_of(
            record,
            done.status,
            relay=given_relay,
            site_phone=phone_number,
            reissued=True,
            replaces=done.replaces,
        )
        written["sheet_pdf"] = str(_write_sheet(args.sheet, args.paper, sheet, audit))
    not_written = (
        "The transfer sheet was not written: the relay did not answer when asked about the "
        "transfer just after. Give the patient the code above, or print the sheet from the "
        "transfer's page in the ER console."
    )
    if args.json:
        told: dict[str, object] = {"transfer_id": record.transfer_id, "code": code}
        told |= {"qr_png": str(qr), **written, "phone_updated": done.phone_updated}
        print(json.dumps(told))
        if no_sheet:  # stdout carries only the one JSON object
            print(not_written, file=sys.stderr)
    else:
        print(f"New code for transfer {record.transfer_id}: {code}")
        print(f"  QR code: {qr}")
        if written:
            print(f"  Transfer sheet: {written['sheet_pdf']}")
        if no_sheet:
            print(not_written)
        print("The old code and QR no longer work.")
        if not done.phone_updated:
            print(PHONE_NOT_UPDATED)
    return 0


def run_break_glass(args: argparse.Namespace) -> int:
    from sending_site import journal, refusals
    from sending_site.break_glass import add_break_glass
    from sending_site.command_audit import break_glass_audited, refusal_audited, site_audit
    from sending_site.errors import BreakGlassIncomplete
    from site_agent.local_state import default_state_dir
    from site_agent.terminal_text import shown

    problem = _break_glass_problem(args.reason, args.clinician)
    if problem:  # nothing asked of the relay: not recorded, as the console's form
        raise BreakGlassIncomplete(problem)
    state = args.state or default_state_dir()
    # Read first, as `reissue` does: an id this machine never sent (or a code typed in its
    # place) is refused before anything is recorded.
    sent = journal.load(state, args.transfer_id)
    clinician = args.clinician.strip()
    audit = site_audit(state)
    with refusal_audited(audit, "break-glass", sent.transfer_id, clinician=clinician):
        adding = add_break_glass(
            state, sent.transfer_id, args.relay, _credential(args), args.reason.strip(), clinician
        )
        added = asyncio.run(adding)
    break_glass_audited(audit, added.transfer_id, clinician, already=added.already)
    if args.json:  # as `push --json`: no code the relay may not hold (a re-issue's)
        body = {"transfer_id": added.transfer_id, "code": added.code, "break_glass": True}
        confirmed = added.code is not None
        print(json.dumps({**body, "code_confirmed": confirmed, "already": added.already}))
        return 0
    done = "was already" if added.already else "is now"
    print(f"Transfer {added.transfer_id} {done} authorized by BREAK-GLASS (in the audit trail).")
    if added.code is None:
        print(f"  Code: {refusals.unconfirmed(added.transfer_id).cli}")
    else:
        print(f"  Code: {added.code} (unchanged: the sheet with the patient still works)")
    recipient = shown(added.recipient_display_name)
    print(f"Next: {recipient} redeems the code; the family need not authorize.")
    return 0
