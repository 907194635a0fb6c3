"""The inbox's promise across a crash: an image answered with success is on disk and indexed.
Three storescu runs send at once (so their images share group commits); once some images were
answered, the index stalls (the test holds its write lock, as a stalled disk would), the next
images arrive and wait, and the agent is SIGKILLed. Every image storescu saw answered with
success must be in the index, its file whole, before and after the agent starts again; an
agent answering before its commit would have answered some of the images sent during the
stall."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import dataset_bytes
from inbox_harness import InboxProcess
from peers import PEER_ENVIRONMENT, require_peer

from sending_site.synthetic import make_ct_study

pytestmark = pytest.mark.peers

RUNS = 3
IMAGES_PER_RUN = 80
KILL_AFTER = 40  # successes answered, over all runs, before the SIGKILL
WAIT = 120.0  # seconds for that many answers (a bound, not a speed requirement)
STALL = 2.0  # seconds the index stays locked at most before the kill (under sqlite's 5 s wait)


class AnsweredImages:
    """Reads `storescu -v` as it runs: the files it sent that were answered with success."""

    def __init__(self, enough: int) -> None:
        self.files: list[Path] = []
        self.enough = threading.Event()  # set once `enough` files were answered
        self._count = enough
        self._lock = threading.Lock()

    def follow(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        sending: Path | None = None
        for line in proc.stdout:
            if "Sending file: " in line:
                sending = Path(line.split("Sending file: ", 1)[1].strip())
            elif "Received Store Response (Success)" in line and sending is not None:
                with self._lock:
                    self.files.append(sending)
                    if len(self.files) >= self._count:
                        self.enough.set()
                sending = None

    def expect_more(self, more: int) -> None:
        """Clear `enough`, to be set again once `more` further files were answered."""
        with self._lock:
            self.enough.clear()
            self._count = len(self.files) + more


def _storescu(port: int, folder: Path) -> subprocess.Popen[str]:
    args = ["-v", "-R", "-aec", "TRAUMARELAY", "-to", "10", "-ta", "10", "-td", "10"]
    return subprocess.Popen(
        [require_peer("storescu"), *args, "+sd", "+r", "127.0.0.1", str(port), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env={**os.environ, **PEER_ENVIRONMENT},
    )


def _sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _assert_every_answered_image_is_kept(agent: InboxProcess, answered: list[Path]) -> None:
    indexed = dict(agent.query("SELECT sop_instance_uid, file FROM instances"))
    for original in answered:
        uid = _sop_instance_uid(original)
        assert uid in indexed, f"{original.name} was answered with success but is not indexed"
        kept = agent.spool / "instances" / f"{indexed[uid]}.dcm"
        assert dataset_bytes(kept) == dataset_bytes(original)


def test_a_sigkill_after_successes_were_answered_loses_none(tmp_path: Path) -> None:
    folders = [tmp_path / f"study-{n}" for n in range(RUNS)]
    for n, folder in enumerate(folders):
        make_ct_study(folder, IMAGES_PER_RUN, seed=4300 + n, patient_id=f"ER-{n}")
    agent = InboxProcess(tmp_path / "agent").start()
    answered = AnsweredImages(KILL_AFTER)
    runs: list[subprocess.Popen[str]] = []
    readers: list[threading.Thread] = []
    try:
        for folder in folders:
            runs.append(_storescu(agent.port, folder))
            readers.append(threading.Thread(target=answered.follow, args=(runs[-1],)))
            readers[-1].start()
        assert answered.enough.wait(WAIT), agent.log()[-3000:]
        stall = sqlite3.connect(agent.spool / "index.sqlite3", isolation_level=None)
        try:
            stall.execute("BEGIN IMMEDIATE")  # the index's commits now wait
            # An agent keeping its promise answers at most the image of each association
            # committed just before the lock, then nothing: this waits out STALL. One that
            # answered before its commit goes on answering, and is killed then.
            answered.expect_more(3 * RUNS)
            answered.enough.wait(STALL)
            assert agent.proc is not None
            agent.proc.kill()  # SIGKILL, in the middle of the three associations
            agent.proc.wait()
        finally:
            stall.close()
        for proc in runs:
            proc.wait(WAIT)
        for reader in readers:
            reader.join(WAIT)
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        agent.stop()

    sent = RUNS * IMAGES_PER_RUN
    assert KILL_AFTER <= len(answered.files) < sent  # the kill came in the middle
    _assert_every_answered_image_is_kept(agent, answered.files)  # as the crash left it

    agent.start()  # cleans up after the crash and indexes what was kept but not answered
    try:
        _assert_every_answered_image_is_kept(agent, answered.files)
        assert not agent.unexpected_spool_files()  # no `.part` left in incoming/
        kept = {path.stem for path in agent.kept_files()}
        assert kept == {file for (file,) in agent.query("SELECT file FROM instances")}
    finally:
        assert agent.stop() == 0
