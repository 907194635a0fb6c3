"""`trauma-relay audit verify`, `audit export` and `audit forward`: thin edges over `reading`,
`relay.storage.audit_chain`, the two export formats and `syslog`. Exit status: 0 done (verify:
intact), 1 the trail has been tampered with, 2 bad input (raised as `RelayError`)."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

INTACT, TAMPERED = 0, 1


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trail = sub.add_parser("audit", help="check or export the relay's audit trail")
    trail_sub = trail.add_subparsers(dest="audit_command", required=True)

    verify = _command(
        trail_sub,
        "verify",
        "check that no audit record was changed, inserted or removed",
        "Check the audit trail's hash chain and say which record is wrong, if any. Exit status "
        "0: intact; 1: records were changed, inserted or removed; 2: no relay data there. The "
        "relay may keep running; nothing is written.",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(run=_run_verify)

    export = _command(
        trail_sub,
        "export",
        "write the audit trail as JSON lines or DICOM audit messages",
        "Write the audit records as JSON lines (every field, hashes included) or as DICOM "
        "PS3.15 audit messages (XML). Dates are ISO 8601, UTC unless they say otherwise; a date "
        "alone means the whole day. The relay may keep running.",
    )
    export.add_argument("--format", required=True, choices=("jsonl", "dicom"))
    export.add_argument("--out", type=Path, metavar="FILE", help="a new file (default: stdout)")
    _period_and_source(export)
    export.set_defaults(run=_run_export)

    send = _command(
        trail_sub,
        "forward",
        "send the audit trail to a syslog receiver over TLS (RFC 5424, 5425)",
        "Send the audit records, as DICOM audit messages in RFC 5424 syslog messages, to an "
        "audit record repository over TLS (RFC 5425). Dates as for export. With --position "
        "FILE, it starts after the record FILE names (at the first record while FILE does not "
        "exist) and, after each batch of records read, writes the last one read to FILE: "
        "records before --since are read past without being sent, and a later run with the "
        "same FILE does not send them either; it stops before the first record from --until "
        "on, which a later run with the same FILE sends. With --follow as well, the "
        "command keeps running and sends new records as they are written, at least once "
        "(after a crash, the last batch may be sent again; each message carries its record's "
        "number as [meta sequenceId]).",
    )
    send.add_argument("--to", required=True, metavar="HOST:PORT", help="the syslog receiver")
    send.add_argument("--ca", type=Path, metavar="FILE", help="CA certificates to trust (PEM)")
    send.add_argument("--cert", type=Path, metavar="FILE", help="this relay's certificate (PEM)")
    send.add_argument("--key", type=Path, metavar="FILE", help="its private key (PEM)")
    send.add_argument(
        "--position",
        type=Path,
        metavar="FILE",
        help="start after the record kept in FILE, and keep the last record read there after "
        "each batch (sent, or passed over as before --since); written once a record "
        "is read, so a missing FILE means from the first record",
    )
    send.add_argument(
        "--follow",
        action="store_true",
        help="keep running and send new records as they are written (needs --position)",
    )
    send.add_argument(
        "--interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="with --follow, how often to look for new records (default: %(default)s)",
    )
    _period_and_source(send)
    send.set_defaults(run=_run_forward)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, brief: str, about: str
) -> argparse.ArgumentParser:
    """An `audit` subcommand, reading the relay's data folder given with --data (and the
    storage its --config names)."""
    parser = sub.add_parser(name, help=brief, description=about)
    parser.add_argument("--data", required=True, type=Path, help="the relay's data directory")
    config_argument(parser)
    return parser


def config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the file the relay runs with, for its storage settings."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the configuration file the relay runs with (relay --config FILE), when it names "
        "the relay's database (storage.metadata_url)",
    )


def _period_and_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_since, metavar="ISO-DATE", help="from this date or time")
    parser.add_argument("--until", type=_until, metavar="ISO-DATE", help="up to this date or time")
    parser.add_argument(
        "--source-id",
        default=socket.gethostname(),
        help="AuditSourceID in DICOM messages (default: this machine's name, %(default)s)",
    )


def _instant(text: str, *, end_of_day: bool) -> float:
    from relay.audit_trail.reading import instant

    try:
        return instant(text, end_of_day=end_of_day)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give a date like 2026-12-03 or a time like 2026-12-03T14:00Z, not {text!r}"
        ) from None


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"give 0.1 to 3600 seconds, not {text!r}")
    return seconds


def _since(text: str) -> float:
    return _instant(text, end_of_day=False)


def _until(text: str) -> float:
    return _instant(text, end_of_day=True)


def _run_verify(args: argparse.Namespace) -> int:
    from relay.audit_trail.reading import Record, each_audit_record
    from relay.storage.audit_chain import verify_audit_chain

    count = 0
    last: Record | None = None

    def counted() -> Iterator[Record]:  # the trail read a page at a time, never held whole
        nonlocal count, last
        for record in each_audit_record(args.data, config_file=args.config):
            count += 1
            last = record
            yield record

    findings = verify_audit_chain(counted())
    if args.json:
        print(
            json.dumps(
                {
                    "intact": not findings,
                    "records": count,
                    "last_seq": last["seq"] if last else None,
                    "last_hash": bytes(last["hash"]).hex() if last else None,
                    "findings": [
                        {"seq": f.seq, "problem": f.problem.value, "message": f.sentence}
                        for f in findings
                    ],
                }
            )
        )
    elif not findings:
        if last is None:
            print("The audit trail is empty: the relay has recorded nothing yet.")
        else:
            print(
                f"The audit trail is intact: {count} records, the last is record "
                f"{last['seq']} (hash {bytes(last['hash']).hex()}). Note the hash: a later "
                "check that still finds it shows nothing was cut from the end."
            )
    else:
        print(
            f"The audit trail has been tampered with: {len(findings)} problem(s) in "
            f"{count} records. Keep a copy of the relay's data folder as evidence and "
            "tell your security officer."
        )
        for f in findings:
            print(f"  {f.sentence}")
    return TAMPERED if findings else INTACT


def _chosen(args: argparse.Namespace) -> Iterator[dict[str, object]]:
    """The records of the period asked for, read a page at a time."""
    from relay.audit_trail.reading import Period, each_audit_record

    period = Period(args.since, args.until)
    return (r for r in each_audit_record(args.data, config_file=args.config) if period.covers(r))


class _WriteFailed(Exception):
    """Writing the export failed (`OSError` in `args[0]`), not reading the trail."""


class _Written:
    """The export's file, whose write failures are told apart from the trail's."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        try:
            return self._out.write(data)
        except OSError as e:
            raise _WriteFailed(e) from e


def _write_export(args: argparse.Namespace, out: BinaryIO) -> int:
    from relay.audit_trail.dicom import write_dicom
    from relay.audit_trail.jsonl import write_jsonl

    if args.format == "jsonl":
        return write_jsonl(_chosen(args), out)
    return write_dicom(_chosen(args), args.source_id, out)


def _run_export(args: argparse.Namespace) -> int:
    """The export is written as it is read (a trail of millions of records is never held
    whole); into a new `--out` file, removed again if the export fails part-way."""
    from relay import errors

    if args.out is None:
        _write_export(args, sys.stdout.buffer)
        sys.stdout.flush()
        return 0
    try:
        out = args.out.open("xb")
    except FileExistsError:
        raise errors.ExportFileExists(
            f"{args.out} already exists, and an export never overwrites a file. Choose another "
            "--out, or move the old file away first."
        ) from None
    except OSError as e:
        raise errors.DataFolderUnusable(
            f"The export could not be written to {args.out} ({e.strerror or e}). Check --out."
        ) from e
    try:
        with out:
            count = _write_export(args, _Written(out))  # type: ignore[arg-type]
    except BaseException as e:
        args.out.unlink(missing_ok=True)  # no half an export left to be taken for a whole one
        if isinstance(e, _WriteFailed):
            cause: OSError = e.args[0]
            raise errors.DataFolderUnusable(
                f"The export could not be written to {args.out} ({cause.strerror or cause}). "
                "Check --out."
            ) from cause
        raise
    print(f"{count} audit record(s) written to {args.out}.", file=sys.stderr)
    return 0


def _run_forward(args: argparse.Namespace) -> int:
    import ssl

    from relay import errors
    from relay.audit_trail.syslog import forward

    host, _, port = str(args.to).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise errors.BadRequest(
            f"Give --to as HOST:PORT, e.g. audit.example.org:6514, not {args.to!r}."
        )
    try:
        context = ssl.create_default_context(cafile=args.ca)
        if args.cert is not None:
            context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as e:
        raise errors.SyslogUnreachable(
            f"The TLS certificates could not be loaded ({e}). Check --ca, --cert and --key."
        ) from e

    def send(records: list[dict[str, object]]) -> int:
        return forward(records, host.strip("[]"), int(port), context, args.source_id)

    if args.position is None:
        if args.follow:
            raise errors.BadRequest(
                "--follow needs --position FILE, where the last record forwarded is kept, so "
                "that a restart goes on from there."
            )
        print(f"{send(list(_chosen(args)))} audit record(s) sent to {args.to}.")
        return 0
    return _forward_from_position(args, send)


def _forward_from_position(
    args: argparse.Namespace, send: Callable[[list[dict[str, object]]], int]
) -> int:
    import signal

    from relay import errors
    from relay.audit_trail.follow import Forwarding
    from relay.audit_trail.reading import Period

    if args.follow and args.until is not None:
        raise errors.BadRequest("--follow has no end: leave out --until.")
    forwarding = Forwarding(
        args.data,
        args.position,
        send,
        say=lambda line: print(line, flush=True),
        period=Period(args.since, args.until),
        config_file=args.config,
    )
    if not args.follow:
        print(f"{forwarding.catch_up()} audit record(s) sent to {args.to}.")
        return 0

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"Forwarding the audit trail to {args.to} as it is written.", flush=True)
    try:
        forwarding.follow(args.interval)
    except KeyboardInterrupt:
        print(_stopped(args.position), file=sys.stderr)
    return 0


def _stopped(path: Path) -> str:
    """What the forwarder says when stopped: what `path` now keeps, and so where it goes on."""
    from relay.audit_trail.follow import load_position

    if not path.exists():
        return (
            f"Stopped before any record was read: {path} was not written, and forwarding "
            "started again begins at the trail's first record."
        )
    seq = load_position(path).seq
    return (
        f"Stopped. {path} keeps record {seq}, the last one read (sent, or passed over as "
        f"before --since); started again with it, forwarding goes on after record {seq}."
    )
