"""Child processes whose peak resident memory is known: `VmHWM` in `/proc/PID/status`, read
every `HWM_POLL` seconds while the process runs (the last reading is kept: it only grows).
Not `ru_maxrss` from `os.wait4`: Linux counts in it the parent's memory at fork, so every
small child would look as large as the benchmark runner."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "trauma_relay.cli"]
STOP_TIMEOUT = 30.0  # seconds after SIGTERM before SIGKILL
HWM_POLL = 0.05  # seconds between readings of VmHWM
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def environment(**extra: str) -> dict[str, str]:
    """This checkout's code first, peers' TCP_NODELAY, no trauma-relay setting from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAUMA_RELAY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["TCP_NODELAY"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of the running process `pid` (`/proc/PID/stat`)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of the running process `pid`, of its children that ended (and were reaped
    by it), and of those still running, theirs included: a server that forks (PostgreSQL's
    backends) as a whole."""
    total = 0.0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tick = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
            todo.extend(children.get(current, []))
    return total


@dataclass
class Measured:
    """One child process, its output in files under `folder`."""

    name: str
    argv: list[str]
    folder: Path
    env: dict[str, str]
    stdin: str = ""
    cwd: Path | None = None
    # Its standard input stays open, for `type_in` (as staff type into a command waiting).
    typed_later: bool = False
    started: float = 0.0
    ended: float | None = None
    returncode: int | None = None
    peak_rss_mb: float | None = None
    cpu_s: float | None = None  # user + system seconds, from its rusage once reaped
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def stdout_path(self) -> Path:
        return self.folder / f"{self.name}.out"

    @property
    def stderr_path(self) -> Path:
        return self.folder / f"{self.name}.err"

    def start(self) -> Measured:
        self.folder.mkdir(parents=True, exist_ok=True)
        stdin_path = self.folder / f"{self.name}.in"
        stdin_path.write_text(self.stdin)
        with (
            stdin_path.open("rb") as stdin,
            self.stdout_path.open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.typed_later else stdin,
                stdout=out,
                stderr=err,
                cwd=self.cwd,
                env=self.env,
            )
        threading.Thread(target=self._watch_memory, args=(self.proc.pid,), daemon=True).start()
        return self

    def type_in(self, text: str) -> None:
        """Write `text` to its standard input (started `typed_later`), then close it."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        with self.proc.stdin as stdin:
            stdin.write(text.encode())

    def _watch_memory(self, pid: int) -> None:
        status = Path(f"/proc/{pid}/status")
        while self.returncode is None:
            try:
                lines = status.read_text().splitlines()
            except OSError:
                return
            for line in lines:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024 / 1e6
                    self.peak_rss_mb = max(self.peak_rss_mb or 0.0, peak)
            time.sleep(HWM_POLL)

    def cpu_now(self) -> float:
        """User + system CPU seconds so far of this running process."""
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def describe(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-3000:]
        return f"{self.name} ({' '.join(self.argv[:5])} ...) exit {self.returncode}:\n{err}"

    def poll(self) -> bool:
        """Whether it has ended (and is reaped)."""
        if self.returncode is not None:
            return True
        assert self.proc is not None
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.ended = time.perf_counter()
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # so Popen never waits for it again
        return True

    def wait(self, timeout: float) -> Measured:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not finish in {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def ok(self, timeout: float) -> Measured:
        self.wait(timeout)
        if self.returncode != 0:
            raise RuntimeError(self.describe())
        return self

    def stop(self) -> Measured:
        """SIGTERM, then SIGKILL if it does not go; reaped either way."""
        if self.proc is None or self.poll():
            return self
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(RuntimeError):  # killed by wait() then
            self.wait(STOP_TIMEOUT)
        return self

    def kill(self) -> None:
        if self.proc is not None and not self.poll():
            self.proc.kill()
            while not self.poll():
                time.sleep(0.01)

    def wait_for_output(self, text: str, timeout: float) -> str:
        """Stdout once it contains `text`."""
        deadline = time.monotonic() + timeout
        while text not in (out := self.stdout()):
            if self.poll() or time.monotonic() > deadline:
                raise RuntimeError(f"never printed {text!r}: {self.describe()}\n{out[-2000:]}")
            time.sleep(0.02)
        return out


class MachineBusy:
    """CPU seconds the whole machine spent busy (all processes, all cores) between `start`
    and `stop`, from `/proc/stat`: with the CPU seconds of the processes we started, what the
    rest (a database, an object store) took."""

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.wall_s = 0.0
        self._start: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _now() -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(f) for f in fields[:8]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), time.perf_counter()

    def start(self) -> MachineBusy:
        self._start = self._now()
        return self

    def stop(self) -> MachineBusy:
        busy, wall = self._now()
        self.busy_s = busy - self._start[0]
        self.wall_s = wall - self._start[1]
        return self

    def cores_busy(self) -> float:
        """On average, how many cores were busy."""
        return self.busy_s / self.wall_s if self.wall_s else 0.0


def http_ok(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=1):
            return True
    except OSError:
        return False


def post(url: str, body: bytes, content_type: str = "application/json") -> bytes:
    request = urllib.request.Request(  # noqa: S310 - loopback URLs built by the benchmark
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    with _OPENER.open(request, timeout=3600) as answer:
        data: bytes = answer.read()
        return data
