"""Figures 1 and 4: PACS to PACS through the sending agent, the relay and the receiving agent,
against Orthanc A sending the same study straight to Orthanc B (C-STORE and its HTTP peer
store) in the same run; and the cut-through latency of that run, drawn.

The sending agent is `trauma-relay sender inbox` (Orthanc A C-STOREs to it, as a PACS does
when staff "send to TRAUMARELAY") with `push --from-inbox` following the study. A push can
only follow a study the inbox already holds, so Orthanc A first sends one image, the push
starts, the code is authorized, `redeem --pacs --as-they-arrive` starts (storing each image
as soon as it is verified), and then Orthanc A sends the rest: the time runs from the first
image leaving Orthanc A to the receiving agent's exit with every image stored in Orthanc B.

Figure 2 runs the same over WAN links: `route(link, port)` gives the port that reaches `port`
through `link`, one of `LINKS` (by default every link is loopback itself)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from peers.ports import free_port
from processes import CLI, Measured, environment, post
from sites import BenchRelay, redeemed_instances
from studies import Study

AGENT_AE = "TRAUMARELAY"
AS_THEY_ARRIVE = "--as-they-arrive"
RUN_TIMEOUT = 3600.0
# The links a route can go through: Orthanc A to Orthanc B (the direct send), the sending agent
# to the relay, the relay to the receiving agent. Each hospital's PACS is on its agent's LAN.
LINKS = ("direct", "sending", "receiving")
Route = Callable[[str, int], int]


def loopback(link: str, port: int) -> int:
    """Every link is loopback itself."""
    return port


class Orthanc(OrthancServer):
    """Orthanc with `OrthancPeers` too (for its HTTP peer store)."""

    def __init__(self, workdir: Path, *, peers: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(workdir, **kw)
        self._peers = peers or {}

    def config(self, workdir: Path) -> dict[str, Any]:
        config = super().config(workdir)
        if self._peers:
            config["OrthancPeers"] = {name: [url + "/"] for name, url in self._peers.items()}
        return config

    def store(self, target: str, resources: str | list[str]) -> None:
        """Send `resources` to `target` (`modalities/NAME` or `peers/NAME`), waiting."""
        body = resources.encode() if isinstance(resources, str) else json.dumps(resources).encode()
        post(f"{self.url}/{target}/store", body, "text/plain")

    def reception_times(self) -> list[float]:
        """When each instance was received (Unix time), sorted."""
        times = []
        for orthanc_id in self.instances():
            stamp = self.get(f"/instances/{orthanc_id}/metadata/ReceptionDate").decode()
            times.append(_orthanc_time(stamp))
        return sorted(times)


def _orthanc_time(stamp: str) -> float:
    """Orthanc's ReceptionDate (ISO, basic or extended, UTC) as Unix time."""
    digits = re.sub(r"[-:]", "", stamp.strip())
    fmt = "%Y%m%dT%H%M%S.%f" if "." in digits else "%Y%m%dT%H%M%S"
    return datetime.strptime(digits, fmt).replace(tzinfo=UTC).timestamp()


@dataclass
class PacsRun:
    study: Study
    instances: int
    megabytes: float
    direct_cstore_s: float
    direct_http_s: float
    ours_s: float
    peak_rss_mb: dict[str, float | None]
    arrived: list[float] = field(default_factory=list)  # Unix times, sorted
    at_relay: list[float] = field(default_factory=list)
    stored: list[float] = field(default_factory=list)


def _instances_in_order(a: Orthanc, study_id: str) -> list[str]:
    listed = a.get_json(f"/studies/{study_id}/instances")
    listed.sort(key=lambda i: int(i["MainDicomTags"].get("InstanceNumber", "0") or 0))
    return [i["ID"] for i in listed]


def _wait_for(path_text: Callable[[], str], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"never saw {text!r}: {path_text()[-2000:]}")
        time.sleep(0.05)


def pacs_to_pacs(study: Study, work: Path, route: Route = loopback) -> PacsRun:
    files = study.files()
    work.mkdir(parents=True, exist_ok=True)
    agent_port = free_port()
    with (
        Orthanc(work / "b-cstore", ae_title="ORTHANCB") as b_cstore,
        Orthanc(work / "b-http", ae_title="ORTHANCB") as b_http,
        Orthanc(work / "b-relay", ae_title="ORTHANCB") as b_relay,
        Orthanc(
            work / "a",
            ae_title="ORTHANCA",
            dicom_modalities={
                "agent": {"AET": AGENT_AE, "Host": "127.0.0.1", "Port": agent_port},
                "b": {
                    "AET": "ORTHANCB",
                    "Host": "127.0.0.1",
                    "Port": route("direct", b_cstore.dicom_port),
                },
            },
            peers={"b": f"http://127.0.0.1:{route('direct', b_http.http_port)}"},
        ) as a,
    ):
        loaded = storescu(a.dicom_port, [study.dicom], called_ae_title=a.ae_title)
        if loaded.returncode != 0 or len(a.instances()) != len(files):
            raise RuntimeError(f"loading Orthanc A failed: {loaded.stderr[-2000:]}")
        (study_id,) = a.studies()
        study_uid = a.get_json(f"/studies/{study_id}")["MainDicomTags"]["StudyInstanceUID"]

        start = time.perf_counter()
        a.store("modalities/b", study_id)
        direct_cstore = time.perf_counter() - start
        start = time.perf_counter()
        a.store("peers/b", study_id)
        direct_http = time.perf_counter() - start
        for b in (b_cstore, b_http):
            if len(b.instances()) != len(files):
                raise RuntimeError("Orthanc A's direct send did not store every instance")

        run = _through_the_relay(study, work, a, b_relay, agent_port, study_id, study_uid, route)
        return PacsRun(
            study,
            len(files),
            study.megabytes(),
            direct_cstore,
            direct_http,
            *run,
        )


def _through_the_relay(
    study: Study,
    work: Path,
    a: Orthanc,
    b: Orthanc,
    agent_port: int,
    study_id: str,
    study_uid: str,
    route: Route,
) -> tuple[float, dict[str, float | None], list[float], list[float], list[float]]:
    n = len(study.files())
    folder = work / "ours"
    relay = BenchRelay(folder).start()
    sending_url, receiving_url = (
        f"http://{relay.host}:{route(link, relay.port)}" for link in ("sending", "receiving")
    )
    spool = folder / "spool"
    argv = [*CLI, "sender", "inbox", "--ae-title", AGENT_AE, "--port", str(agent_port)]
    argv += ["--bind", "127.0.0.1", "--spool", str(spool)]
    inbox = Measured("inbox", argv, folder, environment()).start()
    push = redeem = None
    try:
        both = lambda: inbox.stdout() + inbox.stderr_path.read_text(errors="replace")  # noqa: E731
        _wait_for(both, "Receiving DICOM as", 60)
        first, *rest = _instances_in_order(a, study_id)
        start = time.perf_counter()
        a.store("modalities/agent", [first])
        push = relay.push(
            "push",
            [],
            folder,
            [
                "--from-inbox",
                str(spool),
                "--study",
                study_uid,
                "--inbox-pacs",
                f"{a.ae_title}@127.0.0.1:{a.dicom_port}",
                "--stable-after",
                "1",
            ],
            relay_url=sending_url,
        )
        code = relay.authorized_code(push, RUN_TIMEOUT)
        tid = re.search(r"transfer (\w{24}) to", push.stdout())
        pacs = f"{b.ae_title}@127.0.0.1:{b.dicom_port}"
        # Each image into Orthanc B as soon as it is verified (cut-through to the PACS).
        redeem = relay.redeem(
            "redeem", code, folder, pacs=pacs, relay_url=receiving_url, extra=[AS_THEY_ARRIVE]
        )
        if rest:
            a.store("modalities/agent", rest)
        push.ok(RUN_TIMEOUT)
        redeem.ok(RUN_TIMEOUT)
        elapsed = (redeem.ended or time.perf_counter()) - start
        if redeemed_instances(redeem) != n or len(b.instances()) != n:
            raise RuntimeError(f"the relay path did not deliver all {n} images")
    finally:
        for proc in (push, redeem):
            if proc is not None:
                proc.kill()
        inbox.stop()
        relay_peak = relay.stop()
    db = sqlite3.connect(f"{(spool / 'index.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        arrived = sorted(t for (t,) in db.execute("SELECT arrived_at FROM instances"))
    finally:
        db.close()
    at_relay: list[float] = []
    if tid is not None:
        objects = relay.data / "objects" / tid.group(1)
        at_relay = sorted(p.stat().st_mtime for p in objects.glob("*.sealed"))
    peaks = {
        "relay": relay_peak,
        "sending agent inbox": inbox.peak_rss_mb,
        "push --from-inbox": push.peak_rss_mb if push else None,
        "redeem --pacs": redeem.peak_rss_mb if redeem else None,
    }
    return elapsed, peaks, arrived, at_relay, b.reception_times()
