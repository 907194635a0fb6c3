"""Drive the real `trauma-relay` command against a real relay process, as the sites would.

Secrets never go in argv: the site credential rides in TRAUMA_RELAY_CREDENTIAL and the code on
stdin. Every CLI run is bounded by a timeout so a hang fails the test instead of the CI job.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from dicom_corpus import dataset_bytes
from peers.orthanc import OrthancServer
from peers.s3 import S3Bucket
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import DeflatedExplicitVRLittleEndian
from relay_harness import RECEIVER, SENDER, RelayProcess

from transfer_codes.phone import split_link

PIXEL_DATA = 0x7FE00010
CLI_TIMEOUT = 180.0  # seconds for one push or redeem
# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def trauma_relay_executable() -> str:
    """The `trauma-relay` console script installed next to this interpreter."""
    beside = Path(sys.executable).with_name("trauma-relay")
    if beside.exists():
        return str(beside)
    found = shutil.which("trauma-relay")
    if found is None:
        raise RuntimeError("the trauma-relay command is not installed (pip install -e .)")
    return found


def cli_environment(credential: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any trauma-relay setting, plus the credential and
    `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAUMA_RELAY_")}
    if credential is not None:
        env["TRAUMA_RELAY_CREDENTIAL"] = credential
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CliRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The one JSON object a `--json` run printed (its last stdout line)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no output from {self.describe()}"
        body: dict[str, Any] = json.loads(lines[-1])
        return body

    def describe(self) -> str:
        return (
            f"trauma-relay {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def ok(self) -> CliRun:
        assert self.returncode == 0, self.describe()
        return self

    def failed(self) -> CliRun:
        """Assert the run failed cleanly: non-zero, a message, and no Python traceback."""
        assert self.returncode != 0, self.describe()
        assert self.stderr.strip(), self.describe()
        assert "Traceback" not in self.stderr, self.describe()
        return self

    @property
    def message(self) -> str:
        """stderr on one line, for matching sentences that the CLI wraps."""
        return " ".join(self.stderr.split())


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    credential: str | None = None,
    stdin: str = "",
    timeout: float = CLI_TIMEOUT,
    env: dict[str, str] | None = None,
) -> CliRun:
    """Run `trauma-relay ARGS` to completion (`env`: variables to add)."""
    return _run(args, cwd, credential, timeout, env, input=stdin)


def _run(
    args: Sequence[str],
    cwd: Path,
    credential: str | None,
    timeout: float,
    env: dict[str, str] | None = None,
    **stdin: Any,
) -> CliRun:
    """Run to completion, output captured; `stdin` is `input=TEXT` or `stdin=FILE`."""
    done = subprocess.run(
        [trauma_relay_executable(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_environment(credential, env),
        timeout=timeout,
        check=False,
        **stdin,
    )
    return CliRun(tuple(args), done.returncode, done.stdout, done.stderr)


def run_cli_on_terminal(
    args: Sequence[str],
    *,
    cwd: Path,
    credential: str | None = None,
    typed: str = "",
    timeout: float = CLI_TIMEOUT,
) -> CliRun:
    """Run `trauma-relay ARGS` with a terminal (a pseudo-terminal) as its standard input, on
    which `typed` is typed before it starts; stdout and stderr are captured as by `run_cli`."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, typed.encode())
        return _run(args, cwd, credential, timeout, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def start_cli(
    args: Sequence[str], *, cwd: Path, credential: str | None = None, stdin: str = ""
) -> subprocess.Popen[str]:
    """Start `trauma-relay ARGS` in the background with `stdin` written (the pipe stays open
    until `finish_cli`), output piped."""
    proc = subprocess.Popen(
        [trauma_relay_executable(), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=cli_environment(credential),
    )
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.flush()
    return proc


def finish_cli(proc: subprocess.Popen[str], timeout: float = CLI_TIMEOUT) -> CliRun:
    """Wait for a background run and collect the rest of its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        stop_cli(proc)
    args = proc.args
    assert isinstance(args, list)
    return CliRun(tuple(str(a) for a in args[1:]), proc.returncode, stdout, stderr)


def stop_cli(proc: subprocess.Popen[str]) -> None:
    """Make sure a background run is gone (after a failed assertion, say) and its pipes closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # in case a test stopped it
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def printed_ready(push: subprocess.Popen[str]) -> dict[str, str]:
    """Read a running plain-text push's stdout until it has printed its transfer id, code and
    authorization link (once its keys are installed): `transfer`, `code`, `link`."""
    assert push.stdout is not None
    printed: dict[str, str] = {}
    while not {"code", "link", "transfer"} <= set(printed):
        line = push.stdout.readline()
        assert line, "push ended before printing its code"
        for key, pattern in (
            ("transfer", r"transfer (\w{24}) to"),
            ("code", r"Code:\s+(\S+)"),
            ("link", r"authorization link:\s+(\S+)"),
        ):
            if match := re.search(pattern, line):
                printed[key] = match.group(1)
    return printed


def listed_commands(stderr: str) -> list[list[str]]:
    """The `trauma-relay redeem` commands a message lists on lines of their own, as argv."""
    return [
        shlex.split(line.strip())
        for line in stderr.splitlines()
        if line.strip().startswith("trauma-relay redeem ")
    ]


def post_json(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<relay port>
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


class E2ERelay:
    """A `trauma-relay relay` process with an ER and a trauma center registered through the
    real `site add` command, and helpers that run the sites' commands against it."""

    def __init__(
        self,
        root: Path,
        bucket: S3Bucket | None = None,
        relay_args: Sequence[str] = (),
        settings: dict[str, object] | None = None,
    ) -> None:
        """With `bucket`, the relay keeps its sealed objects there (under a prefix of its own),
        as its `relay.toml` says; `relay_args` are more `trauma-relay relay` options. With
        `settings` (such as `metadata_url`), its relay.toml says those too before the sites
        are registered."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "relay-data"
        self.log_file = root / "relay.log"
        self.process = RelayProcess(self.data_dir, self.log_file, extra_args=relay_args)
        self.url = self.process.url
        self.bucket = bucket
        self.prefix = bucket.new_prefix() if bucket else ""
        toml = {**(bucket.settings(self.prefix) if bucket else {}), **(settings or {})}
        if settings:
            self.data_dir.mkdir(mode=0o700)
            _write_relay_toml(self.data_dir, toml)
        self.sender_credential = self._add_site(SENDER, "sending", "St. Mary's ED")
        self.receiver_credential = self._add_site(RECEIVER, "receiving", "County Trauma")
        if bucket is not None and not settings:
            _write_relay_toml(self.data_dir, toml)

    def another_instance(self, root: Path, relay_args: Sequence[str] = ()) -> E2ERelay:
        """A second relay process, on a port and data folder of its own, sharing this one's
        database and bucket (the same relay.toml) and its decoy key, as a second instance
        behind a load balancer. This one must have run once (it makes the decoy key)."""
        other = copy.copy(self)
        other.root = root
        root.mkdir(parents=True, exist_ok=True)
        other.data_dir = root / "relay-data"
        other.data_dir.mkdir(mode=0o700)
        for name in ("relay.toml", "decoy.key"):
            target = other.data_dir / name
            target.write_bytes((self.data_dir / name).read_bytes())
            target.chmod(0o600)
        other.log_file = root / "relay.log"
        other.process = RelayProcess(other.data_dir, other.log_file, extra_args=relay_args)
        other.url = other.process.url
        return other

    def _add_site(self, name: str, role: str, display: str) -> str:
        args = ["site", "add", name, "--role", role, "--display-name", display]
        # --create: the sites are registered before the relay first runs in this folder.
        args += ["--data", str(self.data_dir), "--create", "--json"]
        run = run_cli(args, cwd=self.root).ok()
        body = run.json()
        assert (body["name"], body["role"]) == (name, role)
        credential: str = body["credential"]
        assert credential not in run.args
        return credential

    def start(self) -> E2ERelay:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    # -- the sites' commands ----------------------------------------------------------------

    def push_args(
        self, paths: Iterable[Path], *, state: Path, extra: Sequence[str] = ()
    ) -> list[str]:
        return [
            "push",
            *(str(p) for p in paths),
            "--relay",
            self.url,
            "--to",
            RECEIVER,
            "--state",
            str(state),
            "--yes",  # as a script: nobody at a terminal to confirm
            *extra,
        ]

    def push(
        self,
        paths: Iterable[Path],
        *,
        workdir: Path,
        state: Path | None = None,
        extra: Sequence[str] = ("--json",),
        relay_url: str | None = None,
    ) -> CliRun:
        args = self.push_args(paths, state=state or workdir / "er-state", extra=extra)
        if relay_url is not None:
            args[args.index(self.url)] = relay_url
        return run_cli(args, cwd=workdir, credential=self.sender_credential)

    def as_sender(self, args: Sequence[str], *, workdir: Path) -> CliRun:
        """Run `trauma-relay ARGS` with the ER's credential (revoke, transfers, ...)."""
        return run_cli(args, cwd=workdir, credential=self.sender_credential)

    def pushed_and_authorized(self, folder: Path, workdir: Path) -> dict[str, Any]:
        """Push the study in `folder` and authorize it as the patient: the push's JSON."""
        pushed = self.push([folder], workdir=workdir).ok().json()
        self.authorize(pushed)
        return pushed

    def authorize(self, pushed: dict[str, Any]) -> None:
        """What the patient's phone does with the authorization link."""
        token, _phone_key = split_link(str(pushed["authorization_url"]))
        answer = post_json(self.url + "/api/v1/authorizations", {"token": token})
        assert answer["state"] == "authorized", answer

    def cancel_on_the_phone(self, pushed: dict[str, Any]) -> None:
        """What the family's phone does when they tap "cancel" (the page's CSRF pair too)."""
        token, _phone_key = split_link(str(pushed["authorization_url"]))
        browser = {"Cookie": "tr_csrf=e2e", "X-CSRF-Token": "e2e"}
        answer = post_json(self.url + "/api/v1/phone/revoke", {"token": token}, browser)
        assert answer["state"] == "revoked", answer

    def phone_status(self, pushed: dict[str, Any]) -> dict[str, Any]:
        """What the family's phone is told (`POST /api/v1/phone/status`), as its page asks:
        with the CSRF cookie from the page and the same value in the header."""
        token, _phone_key = split_link(str(pushed["authorization_url"]))
        with _OPENER.open(self.url + "/authorize", timeout=30) as page:
            cookie = page.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<relay port>
            self.url + "/api/v1/phone/status",
            data=json.dumps({"token": token}).encode(),
            headers={
                "Content-Type": "application/json",
                "Cookie": f"tr_csrf={cookie}",
                "X-CSRF-Token": cookie,
                "Origin": self.url,
            },
            method="POST",
        )
        with _OPENER.open(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def redeem_args(
        self, *, state: Path, pacs: str | None = None, out: Path | None = None
    ) -> list[str]:
        where = ["--pacs", pacs] if pacs else ["--out", str(out)]
        return ["redeem", "--relay", self.url, *where, "--state", str(state), "--yes", "--json"]

    def redeem(
        self,
        code: str,
        *,
        workdir: Path,
        pacs: str | None = None,
        out: Path | None = None,
        state: Path | None = None,
    ) -> CliRun:
        args = self.redeem_args(state=state or workdir / "tc-state", pacs=pacs, out=out)
        return run_cli(args, cwd=workdir, credential=self.receiver_credential, stdin=code + "\n")

    def send(
        self, paths: Iterable[Path], *, workdir: Path, pacs: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Push, authorize as the patient, redeem into `pacs` (or a folder): both JSONs."""
        workdir.mkdir(parents=True, exist_ok=True)
        pushed = self.push(paths, workdir=workdir).ok().json()
        self.authorize(pushed)
        redeemed = (
            self.redeem(pushed["code"], workdir=workdir, pacs=pacs, out=workdir / "out").ok().json()
        )
        return pushed, redeemed

    # -- looking inside -------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """A connection to the relay's database, alongside the running relay (WAL)."""
        db = sqlite3.connect(self.data_dir / "relay.sqlite3", timeout=30)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        db = self.connect()
        try:
            return list(db.execute(sql, args).fetchall())
        finally:
            db.close()

    def execute(self, sql: str, *args: object) -> int:
        db = self.connect()
        try:
            with db:
                return db.execute(sql, args).rowcount
        finally:
            db.close()

    def audit_seq(self, transfer_id: str, action: str, outcome: str = "success") -> int | None:
        """The first audit record of `action` with `outcome` for the transfer, or None."""
        rows = self.query(
            "SELECT min(seq) FROM audit WHERE transfer_id = ? AND action = ? AND outcome = ?",
            transfer_id,
            action,
            outcome,
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def transfer_count(self) -> int:
        return int(self.query("SELECT count(*) FROM transfers")[0][0])

    def object_path(self, transfer_id: str, index: int) -> Path:
        return self.data_dir / "objects" / transfer_id / f"{index:08d}.sealed"

    def stored_object(self, transfer_id: str, index: int) -> bytes:
        """The sealed bytes the relay holds for an object, read from its folder or bucket."""
        if self.bucket is None:
            return self.object_path(transfer_id, index).read_bytes()
        keys = self.bucket.keys(f"{self.prefix}/transfers/{transfer_id}/{index:08d}/")
        return b"".join(self.bucket.read(key) for key in sorted(keys))


def _write_relay_toml(data_dir: Path, settings: dict[str, object]) -> None:
    (data_dir / "relay.toml").write_text(
        "".join(
            f"{k} = {json.dumps(v if isinstance(v, int | float) else str(v))}\n"
            for k, v in settings.items()
        )
    )


def pacs_address(scp: RecordingStorageSCP | OrthancServer) -> str:
    if isinstance(scp, OrthancServer):
        return f"{scp.ae_title}@{scp.host}:{scp.dicom_port}"
    return f"{scp.ae_title}@{scp.host}:{scp.port}"


def sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def wire_bytes(path: Path) -> bytes:
    """The data set a C-STORE of this file must carry: its bytes after the file meta, except
    that a deflated stream of odd length gets the one trailing NUL byte PS3.5 A.5 requires
    (pydicom's image_dfl.dcm is odd; DCMTK-based PACS abort on it otherwise)."""
    data = dataset_bytes(path)
    syntax = pydicom.filereader.read_file_meta_info(path).TransferSyntaxUID
    if syntax == DeflatedExplicitVRLittleEndian and len(data) % 2:
        data += b"\x00"
    return data


def assert_identical_in_scp(scp: RecordingStorageSCP, files: Sequence[Path]) -> None:
    """The SCP holds every file, under its SOP Instance UID, with the same dataset bytes, in
    the file's own transfer syntax, and nothing else."""
    received = scp.received
    expected = {sop_instance_uid(p): p for p in files}
    assert set(received) == set(expected)
    for uid, path in expected.items():
        got = received[uid]
        original = pydicom.filereader.read_file_meta_info(path)
        assert got.transfer_syntax == str(original.TransferSyntaxUID), path
        assert got.sop_class_uid == str(original.MediaStorageSOPClassUID), path
        assert got.dataset == wire_bytes(path), f"{path} arrived altered"


def assert_identical_in_orthanc(orthanc: OrthancServer, files: Sequence[Path]) -> None:
    """Orthanc holds exactly these instances (checked through its REST API), and the file it
    stored for each has the original's data set: byte for byte after the file meta, or, where
    Orthanc (DCMTK) re-encoded it, element for element."""
    assert len(orthanc.instances()) == len(files)
    for path in files:
        uid = sop_instance_uid(path)
        orthanc_id = orthanc.find_by_sop_instance_uid(uid)
        assert orthanc_id is not None, f"{path.name} ({uid}) is not in Orthanc"
        assert orthanc.instance_tags(orthanc_id)["SOPInstanceUID"] == uid
        stored = orthanc.instance_file(orthanc_id)
        if dataset_bytes_of(stored) == dataset_bytes(path):
            continue
        ours = pydicom.dcmread(path)
        theirs = pydicom.dcmread(BytesIO(stored))
        assert theirs.file_meta.TransferSyntaxUID == ours.file_meta.TransferSyntaxUID, path
        assert comparable(theirs) == comparable(ours), f"{path} is stored altered in Orthanc"


def comparable(ds: pydicom.Dataset) -> dict[int, object]:
    """A data set's elements and values, without what a DCMTK-based PACS rewrites on its own:
    group lengths (gggg,0000), which it recomputes (some originals carry wrong ones), and the
    VR of encapsulated Pixel Data (OW in some originals, OB as the standard says)."""
    found: dict[int, object] = {}
    for elem in ds:
        if elem.tag.element == 0:
            continue
        if elem.VR == "SQ":
            found[elem.tag] = [comparable(item) for item in elem.value]
        elif elem.tag == PIXEL_DATA:
            found[elem.tag] = bytes(elem.value)
        else:
            found[elem.tag] = elem.value
    return found


def dataset_bytes_of(part10: bytes) -> bytes:
    """`dataset_bytes` for a Part 10 file held in memory."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(part10)
        f.flush()
        return dataset_bytes(Path(f.name))


def read_until(fd: int, text: str) -> str:
    """What `fd` gives until `text` has appeared (bounded: CLI_TIMEOUT)."""
    seen = ""
    deadline = time.monotonic() + CLI_TIMEOUT
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never appeared in {seen!r}"
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"the command ended before {text!r}: {seen!r}"
            seen += chunk.decode(errors="replace")
    return seen


def pushed_with_a_file_changed_at_the_question(
    relay: E2ERelay, tmp_path: Path, folder: Path, changed: Path
) -> dict[str, str]:
    """Push `folder` at a terminal; while push asks "Send this study?", `changed` is rewritten
    for another patient (same size, so push cannot tell), then the question is answered y.
    The transfer then carries an image of someone other than the patient its summary names."""
    args = relay.push_args([folder], state=tmp_path / "er-state")
    args.remove("--yes")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [trauma_relay_executable(), *args],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=cli_environment(relay.sender_credential),
    )
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), "[y/N]")
        data = changed.read_bytes()
        assert data.count(b"DOE^JANE") == 1
        changed.write_bytes(data.replace(b"DOE^JANE", b"ROE^JOHN"))
        os.write(controller, b"y\n")
        answered = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        os.close(terminal)
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = (stream.decode(errors="replace") for stream in answered)
    assert proc.returncode == 0, err
    code = re.search(r"Code: +(\S+)", out)
    link = re.search(r"Patient authorization link: (\S+)", out)
    assert code, out
    assert link, out
    return {"code": code.group(1), "authorization_url": link.group(1)}


def uploaded_objects(log: str, transfer_id: str) -> set[int]:
    """The objects of `transfer_id` a relay's log shows uploaded: by PATCH (alone) or in a
    batch (`relay.api.batches` names them)."""
    patched = re.findall(rf"PATCH /api/v1/transfers/{transfer_id}/objects/(\d+)", log)
    batched = re.findall(rf"Stored objects ([\d,]+) of transfer {transfer_id} ", log)
    return {int(i) for i in patched} | {int(i) for b in batched for i in b.split(",")}
