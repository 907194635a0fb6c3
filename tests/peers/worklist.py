"""DCMTK's `wlmscpfs`: a Modality Worklist SCP serving `.wl` files that the test writes with
pydicom into `<folder>/<AE title>/` (with the `lockfile` wlmscpfs expects there)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from . import PEER_ENVIRONMENT, require_peer
from .ports import free_ports

START_TIMEOUT = 30.0  # seconds for wlmscpfs to listen
WORKLIST_SOP_CLASS = "1.2.840.10008.5.1.4.31"


@dataclass(frozen=True)
class ScheduledPatient:
    """One worklist entry: a patient scheduled for a procedure here."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession_number: str
    procedure: str
    scheduled_date: str = "20270115"
    issuer_of_patient_id: str = "REGIONAL"


def worklist_file(entry: ScheduledPatient, path: Path) -> None:
    """`entry` as a worklist file (what dump2dcm would make from a dump)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = entry.accession_number
    ds.PatientName = entry.patient_name
    ds.PatientID = entry.patient_id
    ds.IssuerOfPatientID = entry.issuer_of_patient_id
    ds.PatientBirthDate = entry.birth_date
    ds.PatientSex = entry.sex
    ds.RequestedProcedureID = entry.accession_number
    ds.RequestedProcedureDescription = entry.procedure
    ds.StudyInstanceUID = generate_uid()
    step = Dataset()
    step.ScheduledStationAETitle = "TRAUMACT"
    step.ScheduledProcedureStepStartDate = entry.scheduled_date
    step.ScheduledProcedureStepStartTime = "0800"
    step.Modality = "CT"
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = entry.procedure
    step.ScheduledProcedureStepID = entry.accession_number
    ds.ScheduledProcedureStepSequence = [step]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WORKLIST_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


class WorklistServer:
    """wlmscpfs on 127.0.0.1 answering as `ae_title`, with `entries` as its worklist."""

    def __init__(self, entries: list[ScheduledPatient], *, ae_title: str = "WORKLIST") -> None:
        self.ae_title = ae_title
        self.host = "127.0.0.1"
        (self.port,) = free_ports(1)
        self._entries = entries
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        executable = require_peer("wlmscpfs")
        self._tempdir = tempfile.TemporaryDirectory(prefix="worklist-")
        root = Path(self._tempdir.name)
        folder = root / self.ae_title
        folder.mkdir()
        (folder / "lockfile").touch()
        for number, entry in enumerate(self._entries, 1):
            worklist_file(entry, folder / f"entry{number:03d}.wl")
        log = (root / "wlmscpfs.log").open("wb")
        self._process = subprocess.Popen(
            [executable, "-dfp", str(root), str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **PEER_ENVIRONMENT},
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("wlmscpfs did not start") from None
                time.sleep(0.1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._tempdir is not None:
            self._tempdir.cleanup()
