"""Figure 3: the relay leg (`push` a folder and `redeem --out` at the same time) against
magic-wormhole sending the same bytes (the study as one uncompressed tar) through a local
mailbox server and transit relay, both sides `--no-listen` so the bytes go through the transit
relay as ours go through our relay. magic-wormhole is installed from PyPI into its own
environment, `ops/bench/.wormhole-venv` (git-ignored), the first time."""

from __future__ import annotations

import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

from peers.ports import free_ports
from processes import Measured, environment
from sites import BenchRelay, redeemed_instances
from studies import Study

VENV = Path(__file__).resolve().parent / ".wormhole-venv"
PACKAGES = ["magic-wormhole", "magic-wormhole-mailbox-server", "magic-wormhole-transit-relay"]
RUN_TIMEOUT = 3600.0
CODE = "7-benchmark-suite"


def installed() -> Path:
    """The environment's bin folder, made and filled if missing."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "wormhole").exists():
        print("installing magic-wormhole into", VENV, file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(bin_dir / "pip"), "install", "--quiet", *PACKAGES], check=True)
    return bin_dir


@dataclass
class LegRun:
    megabytes: float
    ours_s: float
    wormhole_s: float
    peak_rss_mb: dict[str, float | None]


def relay_leg(
    study: Study, work: Path, pacs: str | None = None
) -> tuple[float, dict[str, float | None]]:
    """Seconds from `push` starting to `redeem --out` (or `--pacs`) ending, and the peak RSS
    of each process."""
    files = study.files()
    folder = work / "relay-leg"
    relay = BenchRelay(folder).start()
    push = redeem = None
    try:
        # Both start at once, as magic-wormhole's two do; redeem waits for the code, which
        # push shows once it has read every file and made the transfer.
        start = time.perf_counter()
        push = relay.push("push", [study.dicom], folder)
        redeem = relay.redeem("redeem", None, folder, pacs=pacs, out=folder / "out")
        redeem.type_in(relay.authorized_code(push, RUN_TIMEOUT) + "\n")
        push.ok(RUN_TIMEOUT)
        redeem.ok(RUN_TIMEOUT)
        elapsed = (redeem.ended or time.perf_counter()) - start
        if redeemed_instances(redeem) != len(files):
            raise RuntimeError("redeem did not deliver every image")
    finally:
        for proc in (push, redeem):
            if proc is not None:
                proc.kill()
        relay_peak = relay.stop()
    peaks = {
        "relay": relay_peak,
        "push": push.peak_rss_mb if push else None,
        "redeem --pacs" if pacs else "redeem --out": redeem.peak_rss_mb if redeem else None,
    }
    return elapsed, peaks


def wormhole_leg(study: Study, work: Path) -> float:
    bin_dir = installed()
    tar = study.tar()
    folder = work / "wormhole"
    folder.mkdir(parents=True, exist_ok=True)
    mailbox_port, transit_port = free_ports(2)
    env = environment()
    servers = [
        Measured(
            "mailbox",
            [
                str(bin_dir / "twist"),
                "wormhole-mailbox",
                f"--port=tcp:{mailbox_port}:interface=127.0.0.1",
                f"--channel-db={folder / 'mailbox.sqlite'}",
            ],
            folder,
            env,
            cwd=folder,
        ).start(),
        Measured(
            "transit",
            [
                str(bin_dir / "twist"),
                "transitrelay",
                f"--port=tcp:{transit_port}:interface=127.0.0.1",
            ],
            folder,
            env,
            cwd=folder,
        ).start(),
    ]
    common = [str(bin_dir / "wormhole"), "--relay-url", f"ws://127.0.0.1:{mailbox_port}/v1"]
    common += ["--transit-helper", f"tcp:127.0.0.1:{transit_port}"]
    received = str(folder / "received.tar")
    send = receive = None
    try:
        time.sleep(2.0)  # twist has no readiness signal; the clients would retry anyway
        start = time.perf_counter()
        send = Measured(
            "wormhole-send",
            [*common, "send", "--no-listen", "--hide-progress", "--code", CODE, str(tar)],
            folder,
            env,
            cwd=folder,
        ).start()
        receive = Measured(
            "wormhole-receive",
            [
                *common,
                "receive",
                "--no-listen",
                "--hide-progress",
                "--accept-file",
                "-o",
                received,
                CODE,
            ],
            folder,
            env,
            cwd=folder,
        ).start()
        send.ok(RUN_TIMEOUT)
        receive.ok(RUN_TIMEOUT)
        elapsed = max(send.ended or 0, receive.ended or 0) - start
        if (folder / "received.tar").stat().st_size != tar.stat().st_size:
            raise RuntimeError("magic-wormhole delivered a different size")
    finally:
        for proc in (send, receive):
            if proc is not None:
                proc.kill()
        for server in servers:
            server.stop()
    return elapsed


def relay_against_wormhole(study: Study, work: Path) -> LegRun:
    wormhole_s = wormhole_leg(study, work)
    ours_s, peaks = relay_leg(study, work)
    return LegRun(study.megabytes(), ours_s, wormhole_s, peaks)
