"""Figures 1 and 4: PACS to PACS through the sending agent, the relay and the receiving agent,
against Orthanc A sending the same study straight to Orthanc B (C-STORE and its HTTP peer
store) in the same run, with the CPU seconds each process used; and the cut-through latency of
the same path with the study held back until the code is redeemed (`cut_through`).

Both agents run as staff run them (`trauma-relay sender --config FILE`, its DICOM inbox and
ER console in one process; `trauma-relay receiver --config FILE` with `pacs.as_they_arrive`),
the receiving agent storing into Orthanc B over STOW-RS (`stow.url`: its DICOMweb plugin; the
C-FIND checks still go to its DICOM port), and figure 1 also runs once more storing by C-STORE
(`also_cstore`, into another Orthanc B) for comparison; the cut-through figure stores by
C-STORE.
and are driven over HTTP as a browser does (`agent_harness.ConsoleClient`: signed in, CSRF
token sent). The study is in the ER's PACS (Orthanc A, with its DICOMweb plugin, set as the
agent's `pacs_web.url`): the nurse finds it in the ER console (Find in PACS, by record number:
a C-FIND) and fetches it (over WADO-RS, in the background), opens the study as soon as the
console lists it and sends it to the trauma center (the push runs in the agent, following the
study while images arrive), the patient authorizes, and the registrar enters the code shown
on the transfer's page in the trauma console and files the study under a new record once the
preview shows. The time runs from the nurse's Fetch to every image being in Orthanc B (its
instance count); the run then waits for both consoles to say it is done.

Figure 2 runs the same over WAN links: `route(link, port)` gives the port that reaches `port`
through `link`, one of `LINKS` (by default every link is loopback itself)."""

from __future__ import annotations

import html
import json
import re
import resource
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from agent_harness import AgentProcess, ConsoleClient
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer
from peers.ports import free_port
from processes import CLI, Measured, cpu_seconds, environment, http_ok, post
from relay_harness import RECEIVER
from sites import START_TIMEOUT, BenchRelay
from studies import Study
from trauma_harness import PASSWORD as TRAUMA_PASSWORD
from trauma_harness import USER as TRAUMA_USER
from trauma_harness import configured_agent

from sending_site import journal

AGENT_AE = "TRAUMARELAY"
# How figure 1's path runs, for the figures' details.
PATH = (
    "through the running agents' consoles, driven over HTTP as staff do: the nurse finds the "
    "study in the ER console (Find in PACS: C-FIND to Orthanc A) and fetches it into the "
    "sending agent (trauma-relay sender: WADO-RS from Orthanc A's DICOMweb plugin, in the "
    "background), sends it once it is listed (the push runs in the agent, following the "
    "study), the patient authorizes, the registrar enters the code in the trauma console "
    "(trauma-relay receiver, pacs.as_they_arrive: each image stored as soon as it is verified, "
    "over STOW-RS into Orthanc B's DICOMweb plugin, stow.url) and confirms a new local record"
)
RUN_TIMEOUT = 3600.0
COUNT_POLL = 0.02  # seconds between readings of Orthanc B's instance count
LOCAL_ID = "BENCH-0001"  # the trauma center's new record number for the patient
# What the consoles' pages show: a study in the ER's list, the transfer's code, its address.
_STUDY = re.compile(r'href="/studies/(\d+)"')
_CODE = re.compile(r'id="code">([^<]+)<')
_TRANSFER = re.compile(r"/transfers/(\w+)$")
_FETCH = re.compile(r'name="study" value="([0-9.]+)"')
T = TypeVar("T")
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

    def cpu_now(self) -> float:
        """Its CPU seconds so far."""
        assert self._process is not None
        return cpu_seconds(self._process.pid)

    def store(self, target: str, resources: str | list[str]) -> None:
        """Send `resources` to `target` (`modalities/NAME` or `peers/NAME`), waiting."""
        body = resources.encode() if isinstance(resources, str) else json.dumps(resources).encode()
        post(f"{self.url}/{target}/store", body, "text/plain")


class Counting:
    """When each image reached an Orthanc, to `COUNT_POLL`: its instance count read in a thread
    (its own `ReceptionDate` is to the second only)."""

    def __init__(self, orthanc: Orthanc) -> None:
        self.orthanc = orthanc
        self.times: list[float] = []  # Unix times, the i-th when the count reached i + 1
        self._stop = threading.Event()
        self._failed: Exception | None = None
        self._thread = threading.Thread(target=self._count, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _count(self) -> None:
        try:
            while not self._stop.wait(COUNT_POLL):
                count = int(self.orthanc.get_json("/statistics")["CountInstances"])
                now = time.time()
                self.times += [now] * (count - len(self.times))
        except Exception as e:  # told by `reached`
            self._failed = e

    def reached(self, count: int) -> bool:
        if self._failed is not None:
            raise RuntimeError(f"could not count Orthanc's images: {self._failed}")
        return len(self.times) >= count


class CpuUse:
    """CPU seconds each process used between `start()` and `stop()` (user + system), this
    benchmark's own process (the staff's browser and the counting thread) as "driver"."""

    def __init__(self, processes: dict[str, Callable[[], float]]) -> None:
        self._processes = {**processes, "driver": _own_cpu}
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def start(self) -> CpuUse:
        self._start = {name: now() for name, now in self._processes.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.seconds = {
            name: round(now() - self._start[name], 2) for name, now in self._processes.items()
        }
        return self.seconds


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class RelayRun:
    """One run through the agents and the relay: seconds from its start to every image in
    Orthanc B, and when each image arrived, reached the relay and was stored (Unix times)."""

    ours_s: float
    peak_rss_mb: dict[str, float | None]
    arrived: list[float]
    at_relay: list[float]
    stored: list[float]
    cpu_s: dict[str, float]
    released_at: float | None = None  # held back: when the rest of the study was sent
    steps: dict[str, float] = field(default_factory=dict)  # seconds from the start to each step


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
    steps: dict[str, float] = field(default_factory=dict)  # see `RelayRun.steps`
    # CPU seconds per process: "direct C-STORE", "direct HTTP", "ours" (over STOW-RS) and
    # "ours over C-STORE" (with `also_cstore`), each by process.
    cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)
    ours_cstore_s: float | None = None  # the same path storing by C-STORE (`also_cstore`)
    steps_cstore: dict[str, float] = field(default_factory=dict)


def pacs_to_pacs(
    study: Study, work: Path, route: Route = loopback, *, also_cstore: bool = True
) -> PacsRun:
    """Figure 1 (see the module's text): the direct sends, then ours storing over STOW-RS, and
    with `also_cstore` ours again storing by C-STORE into another Orthanc B."""
    files = study.files()
    work.mkdir(parents=True, exist_ok=True)
    agent_port = free_port()
    with (
        Orthanc(work / "b-cstore", ae_title="ORTHANCB") as b_cstore,
        Orthanc(work / "b-http", ae_title="ORTHANCB") as b_http,
        Orthanc(work / "b-relay", ae_title="ORTHANCB", dicomweb=True) as b_relay,
        (
            Orthanc(work / "b-relay-cstore", ae_title="ORTHANCB") if also_cstore else nullcontext()
        ) as b_relay_cstore,
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
            dicomweb=True,  # for the sending agent's Fetch (WADO-RS)
        ) as a,
    ):
        loaded = storescu(a.dicom_port, [study.dicom], called_ae_title=a.ae_title)
        if loaded.returncode != 0 or len(a.instances()) != len(files):
            raise RuntimeError(f"loading Orthanc A failed: {loaded.stderr[-2000:]}")
        (study_id,) = a.studies()

        cpu: dict[str, dict[str, float]] = {}
        used = CpuUse({"Orthanc A": a.cpu_now, "Orthanc B": b_cstore.cpu_now}).start()
        start = time.perf_counter()
        a.store("modalities/b", study_id)
        direct_cstore = time.perf_counter() - start
        cpu["direct C-STORE"] = used.stop()
        used = CpuUse({"Orthanc A": a.cpu_now, "Orthanc B": b_http.cpu_now}).start()
        start = time.perf_counter()
        a.store("peers/b", study_id)
        direct_http = time.perf_counter() - start
        cpu["direct HTTP"] = used.stop()
        for b in (b_cstore, b_http):
            if len(b.instances()) != len(files):
                raise RuntimeError("Orthanc A's direct send did not store every instance")

        run = _through_the_relay(
            study, work / "stow", a, b_relay, agent_port, study_id, route, stow=True
        )
        cpu["ours"] = run.cpu_s
        by_cstore = None
        if b_relay_cstore is not None:
            by_cstore = _through_the_relay(
                study, work / "cstore", a, b_relay_cstore, agent_port, study_id, route
            )
            cpu["ours over C-STORE"] = by_cstore.cpu_s
        return PacsRun(
            study,
            len(files),
            study.megabytes(),
            direct_cstore,
            direct_http,
            run.ours_s,
            run.peak_rss_mb,
            run.arrived,
            run.at_relay,
            run.stored,
            run.steps,
            cpu,
            None if by_cstore is None else by_cstore.ours_s,
            {} if by_cstore is None else by_cstore.steps,
        )


def cut_through(study: Study, work: Path) -> RelayRun:
    """Figure 1's path with the study held back, as a scanner still reconstructing it: Orthanc
    A sends the first image into the sending agent's DICOM inbox (C-STORE), staff send the
    study, the patient authorizes, the code is redeemed and the record confirmed; only once
    that image is in Orthanc B does Orthanc A send the rest (C-STORE, one job)."""
    study.files()
    work.mkdir(parents=True, exist_ok=True)
    agent_port = free_port()
    with (
        Orthanc(work / "b", ae_title="ORTHANCB") as b,
        Orthanc(
            work / "a",
            ae_title="ORTHANCA",
            dicom_modalities={"agent": {"AET": AGENT_AE, "Host": "127.0.0.1", "Port": agent_port}},
        ) as a,
    ):
        loaded = storescu(a.dicom_port, [study.dicom], called_ae_title=a.ae_title)
        if loaded.returncode != 0:
            raise RuntimeError(f"loading Orthanc A failed: {loaded.stderr[-2000:]}")
        (study_id,) = a.studies()
        return _through_the_relay(study, work, a, b, agent_port, study_id, loopback, held_back=True)


def _through_the_relay(
    study: Study,
    work: Path,
    a: Orthanc,
    b: Orthanc,
    agent_port: int,
    study_id: str,
    route: Route,
    *,
    held_back: bool = False,
    stow: bool = False,
) -> RelayRun:
    """Without `held_back`, the nurse fetches the whole study from Orthanc A (WADO-RS) and
    sends it once it is listed; with it, see `cut_through`. With `stow`, the receiving agent
    stores over STOW-RS (`b` has its DICOMweb plugin), else by C-STORE."""
    n = len(study.files())
    folder = work / "ours"
    relay = BenchRelay(folder).start()
    sending_url, receiving_url = (
        f"http://{relay.host}:{route(link, relay.port)}" for link in ("sending", "receiving")
    )
    sender = AgentProcess(
        folder / "sending-agent",
        sending_url,
        relay.sender_credential,
        ae_title=AGENT_AE,
        pacs=(a.ae_title, "127.0.0.1", a.dicom_port),  # found in it, followed against it
        pacs_web=a.dicomweb_url,  # fetched from it
    )
    sender.dicom_port = agent_port
    sender.write_config()
    sender.add_user()
    receiver = configured_agent(
        relay,  # type: ignore[arg-type]  # its url and receiver_credential, as E2ERelay's
        b,
        folder / "receiving-agent",
        {
            "relay.url": receiving_url,
            "pacs.as_they_arrive": "true",
            **({"stow.url": b.dicomweb_url} if stow else {}),
        },
    )
    agents: list[Measured] = []
    tid = ""
    stored = Counting(b)
    released_at: float | None = None
    fetching: tuple[int, str, str] | None = None
    try:
        for name, command, config, url in (
            ("sending agent", "sender", sender.config, sender.url),
            ("receiving agent", "receiver", receiver.config, receiver.url),
        ):
            agents.append(_agent(name, [command, "--config", str(config)], folder, url))
        until = partial(_until, agents)
        er = ConsoleClient(sender.url).sign_in()
        trauma = ConsoleClient(receiver.url).sign_in(TRAUMA_USER, TRAUMA_PASSWORD)
        used = CpuUse(
            {
                "Orthanc A": a.cpu_now,
                **{agent.name: agent.cpu_now for agent in agents},
                "relay": relay.process.cpu_now,
                "Orthanc B": b.cpu_now,
            }
        )
        rest: list[str] = []
        steps: dict[str, float] = {}
        wall: list[float] = []  # the Unix time at `start`

        def step(name: str) -> None:
            steps[name] = round(time.perf_counter() - start, 3)

        if held_back:
            first, *rest = (i["ID"] for i in a.get_json(f"/studies/{study_id}/instances"))
            stored.start()
            used.start()
            start = time.perf_counter()
            wall.append(time.time())
            a.store("modalities/agent", first)  # the scanner's first image
        else:
            # The nurse finds the study in the ER's PACS by the patient's record number...
            mrn = a.get_json(f"/studies/{study_id}")["PatientMainDicomTags"]["PatientID"]
            search = er.post("/pacs", {"mrn": mrn})
            found = _FETCH.search(_page_ok(search, "searching the PACS"))
            if found is None:
                raise RuntimeError("the ER console's PACS search did not find the study")
            stored.start()
            used.start()
            start = time.perf_counter()
            wall.append(time.time())
            # ... fetches it (the page follows the fetch, which runs in the agent)...
            fetching = er.post("/pacs/fetch", {"study": html.unescape(found.group(1))})
            _page_ok(fetching, "fetching the study")
        # The nurse opens the study as soon as it is listed, and sends it to the trauma center.
        home = until(lambda: _STUDY.search(er.get("/")[2]), "the study in the ER console")
        step("study listed")
        send = er.post(
            f"/studies/{home.group(1)}/send", {"recipient": RECEIVER, "acknowledge": "yes"}
        )
        _page_ok(send, "sending the study")
        job = send[1].removeprefix(sender.url)  # its page leads to the transfer's, once made
        transfer = until(lambda: _TRANSFER.search(er.get(job)[1]), "the transfer's page")
        tid = transfer.group(1)
        page = er.get(f"/transfers/{tid}")
        code = _CODE.search(_page_ok(page, "the transfer's page"))
        if code is None:
            raise RuntimeError(f"no code on the transfer's page: {page[2][-2000:]}")
        step("code shown")
        # What the family's phone does with the link the page shows as a QR.
        token = journal.load(sender.state, tid).authorization_token
        answer = json.loads(
            post(relay.url + "/api/v1/authorizations", json.dumps({"token": token}).encode())
        )
        if answer["state"] != "authorized":
            raise RuntimeError(f"the authorization failed: {answer}")
        step("authorized")
        # The trauma center's registrar types the code, then files the study under a new
        # local record number once the preview shows; each image is stored as it is verified.
        entered = trauma.post("/redeem", {"code": html.unescape(code.group(1)).strip()})
        _page_ok(entered, "entering the code")
        step("code entered")
        imported = f"/imports/{tid}"
        until(lambda: 'data-stage="preview"' in trauma.get(imported)[2], "the preview")
        step("preview shown")
        _page_ok(trauma.post(f"{imported}/identity", {"local_patient_id": LOCAL_ID}), "the record")
        confirmed = trauma.post(
            f"{imported}/import", {"local_patient_id": LOCAL_ID, "ack-new": "1"}
        )
        _page_ok(confirmed, "confirming the patient")
        step("patient confirmed")
        if held_back:
            until(lambda: stored.reached(1), "the first image in Orthanc B", interval=COUNT_POLL)
            released_at = time.time()
            a.store("modalities/agent", rest)  # the rest of the study, as it is reconstructed
        until(lambda: stored.reached(n), "every image in Orthanc B", interval=COUNT_POLL)
        elapsed = time.perf_counter() - start
        cpu_s = used.stop()
        stored.stop()
        until(lambda: 'data-stage="done"' in trauma.get(imported)[2], "the import's end")
        if fetching is not None:
            fetched = f"The PACS sent {n} images"
            page = fetching[1].removeprefix(sender.url)
            until(lambda: fetched in er.get(page)[2], "the fetch")
        status = f"/transfers/{tid}/status.json"
        until(lambda: "Upload complete." in er.get(status)[2], "the upload's end")
        if len(b.instances()) != n:
            raise RuntimeError(f"the relay path did not deliver all {n} images")
    except Exception as e:
        logs = "\n".join(agent.describe() for agent in agents)
        raise RuntimeError(f"{e}\n{logs}") from e
    finally:
        stored.stop()
        for agent in agents:
            agent.stop()
        relay_peak = relay.stop()
    db = sqlite3.connect(f"{(sender.spool / 'index.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        arrived = sorted(t for (t,) in db.execute("SELECT arrived_at FROM instances"))
    finally:
        db.close()
    objects = relay.data / "objects" / tid
    at_relay = sorted(p.stat().st_mtime for p in objects.glob("*.sealed"))
    peaks = {"relay": relay_peak, **{agent.name: agent.peak_rss_mb for agent in agents}}
    for name, times in (("at the sender", arrived), ("at the relay", at_relay)):
        for which, at in (("first", times[:1]), ("last", times[-1:])):
            steps[f"{which} image {name}"] = round(at[0] - wall[0], 3) if at else -1.0
    stored_times = sorted(stored.times)
    steps["first image stored"] = round(stored_times[0] - wall[0], 3) if stored_times else -1.0
    steps["every image stored"] = round(elapsed, 3)
    steps = dict(sorted(steps.items(), key=lambda item: item[1]))
    return RelayRun(elapsed, peaks, arrived, at_relay, stored.times, cpu_s, released_at, steps)


def _agent(name: str, argv: list[str], folder: Path, console: str) -> Measured:
    """`trauma-relay sender|receiver --config FILE` running, once its console answers."""
    agent = Measured(name, [*CLI, *argv], folder, environment()).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not http_ok(console + "/sign-in"):
        if agent.poll() or time.monotonic() > deadline:
            agent.stop()
            raise RuntimeError(f"the {name} did not start: {agent.describe()}")
        time.sleep(0.05)
    return agent


def _page_ok(page: tuple[int, str, str], what: str) -> str:
    """The body of a console answer (status, address, body), which must be a 200."""
    status, address, body = page
    if status != 200:
        raise RuntimeError(f"{what}: {status} at {address}: {body[-2000:]}")
    return body


def _until(
    agents: list[Measured],
    condition: Callable[[], T | bool | None],
    what: str,
    *,
    interval: float = 0.05,
) -> T:
    """What `condition` gives once it is true, while every agent runs."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (found := condition()):
        if any(agent.poll() for agent in agents) or time.monotonic() > deadline:
            raise RuntimeError(f"never saw {what}")
        time.sleep(interval)
    return found  # type: ignore[return-value]
