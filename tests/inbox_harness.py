"""`trauma-relay sender inbox` as a child process, run as a hospital would, with helpers that
look into its spool and index from outside (read-only, beside the running agent)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from peers import PEER_ENVIRONMENT
from peers.ports import free_port

from sending_site.inbox.arrival import Arrival, Patient
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.spool import Spool

START_TIMEOUT = 30.0  # seconds for the agent to say it listens
STOP_TIMEOUT = 30.0  # seconds after SIGTERM before SIGKILL
READY = "Receiving DICOM as"
OUR_FILE_NAME = re.compile(r"[0-9a-f]{32}\.dcm")
JANE = Patient("ER-1", "ER-GENERAL", "DOE^JANE", "19850214", "F")
ARRIVAL = Arrival(
    instance_id="0" * 32,
    sop_instance_uid="1.2.3.4",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    transfer_syntax_uid="1.2.840.10008.1.2.1",
    study_instance_uid="1.2.3",
    series_instance_uid="1.2.3.1",
    patient=JANE,
    accession_number="A000001",
    study_date="20250101",
    study_time="031500",
    study_description="CT TRAUMA",
    modality="CT",
    series_number=1,
    series_description="AXIAL",
    instance_number=1,
    slice_thickness_mm=1.0,
    size=1000,
    arrived_at=1_800_000_000.0,
    calling_ae_title="CT1",
)


def trauma_relay_command() -> str:
    """The `trauma-relay` console script installed next to this interpreter."""
    return str(Path(sys.executable).with_name("trauma-relay"))


def stop_process(proc: subprocess.Popen[bytes] | None) -> int | None:
    """SIGTERM, then the exit status (SIGKILL if it does not stop in time)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class InboxProcess:
    """The agent's DICOM inbox on 127.0.0.1 (see `running_inbox`)."""

    def __init__(
        self, root: Path, *, ae_title: str = "TRAUMARELAY", settings: Sequence[str] = ()
    ) -> None:
        self.root = root
        self.settings = settings  # --set section.key=value
        self.spool = root / "spool"
        self.log_path = root / "inbox.log"
        self.state = root / "state"
        self.ae_title = ae_title
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> InboxProcess:
        """Start the agent (again, after a stop) and wait until it says it listens."""
        self.root.mkdir(parents=True, exist_ok=True)
        earlier = len(self.log())  # a restart appends to the same log
        args = ["sender", "inbox", "--ae-title", self.ae_title, "--port", str(self.port)]
        args += ["--bind", self.host, "--spool", str(self.spool)]
        args += ["--set", f"state.folder={self.state}"]  # its audit log: state/sending/
        for assignment in self.settings:
            args += ["--set", assignment]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [trauma_relay_command(), *args],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.root,  # a relative path it wrote would show up beside the spool
                env={**os.environ, **PEER_ENVIRONMENT, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while READY not in self.log()[earlier:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the inbox did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (SIGKILL if it does not stop in time)."""
        return stop_process(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # -- looking inside -------------------------------------------------------------------

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of `sql` on the index, read-only, beside the running agent (WAL)."""
        db = sqlite3.connect(f"{(self.spool / 'index.sqlite3').as_uri()}?mode=ro", uri=True)
        try:
            return list(db.execute(sql, args).fetchall())
        finally:
            db.close()

    def series_counts(self, study_instance_uid: str) -> dict[str, int]:
        """Series Instance UID to the number of images indexed."""
        rows = self.query(
            "SELECT se.series_instance_uid, count(i.id) FROM series se "
            "JOIN studies st ON st.id = se.study LEFT JOIN instances i ON i.series = se.id "
            "WHERE st.study_instance_uid = ? GROUP BY se.id",
            study_instance_uid,
        )
        return dict(rows)

    def files_outside_spool(self) -> list[Path]:
        """Files under the agent's folder (its working directory) but the spool, its log and
        its audit log."""
        expected = {self.log_path, self.state / "sending" / "console-audit.jsonl"}
        return sorted(
            p
            for p in self.root.rglob("*")
            if p.is_file() and p not in expected and not p.is_relative_to(self.spool)
        )

    def unexpected_spool_files(self) -> list[Path]:
        """Files in the spool other than the index and kept instances named by our ids."""
        index = {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"}
        return sorted(
            p
            for p in self.spool.rglob("*")
            if p.is_file()
            and not (p.parent == self.spool and p.name in index)
            and not (p.parent.name == "instances" and OUR_FILE_NAME.fullmatch(p.name))
        )

    def kept_files(self) -> list[Path]:
        return sorted((self.spool / "instances").glob("*"))


@contextmanager
def running_inbox(
    root: Path, *, ae_title: str = "TRAUMARELAY", settings: Sequence[str] = ()
) -> Iterator[InboxProcess]:
    """The inbox started in `root` (its working folder, spool and log), with `settings`
    (`--set section.key=value`), stopped (SIGTERM) on leaving."""
    agent = InboxProcess(root, ae_title=ae_title, settings=settings)
    try:
        yield agent.start()
    finally:
        agent.stop()


def an_arrival(**changes: Any) -> Arrival:
    """A received CT instance as the index records it, with `changes`."""
    return replace(ARRIVAL, **changes)


def make_multi_series_study(folder: Path, seed: int, **patient: Any) -> dict[str, list[Path]]:
    """A synthetic CT study of three series, by Series Instance UID: 12 thin (1 mm) axial
    slices, 5 thick (5 mm) ones and 3 more 3 mm ones. `patient` goes to `make_ct_study`."""
    from pydicom import dcmread

    from sending_site.synthetic import make_ct_study

    study: dict[str, list[Path]] = {}
    for number, count, thickness in ((1, 12, 1.0), (2, 5, 5.0), (3, 3, 3.0)):
        files = make_ct_study(
            folder / f"series-{number}",
            count,
            seed=seed,
            series_number=number,
            slice_thickness_mm=thickness,
            **patient,
        )
        study[str(dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)] = files
    return study


@asynccontextmanager
async def kept_inbox(spool_folder: Path) -> AsyncIterator[tuple[Spool, InboxIndex, Keeper]]:
    """The inbox's spool, index and keeper in this process (no DICOM node)."""
    spool = Spool.open(spool_folder)
    index = await InboxIndex.open(spool.index)
    try:
        yield spool, index, Keeper(spool, index, asyncio.get_running_loop())
    finally:
        await index.close()
