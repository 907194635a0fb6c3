"""The kill harness: a real `trauma-relay relay` process, SIGKILLed at a random point of one of
the four phases of a transfer, restarted on the same data directory and port, and checked.

Each iteration sends one small study through the relay with the sites' own code (`push`, the
phone's authorization POST, `redeem` into a folder), from fresh sender and receiver state
folders. It picks a phase (upload, authorization, redemption, download) and a delay drawn over
that phase's measured duration (`calibrate`), both from a seeded random generator, and when the
delay has passed the relay is SIGKILLed and started again. The client carries on as a person
would: the agents retry on their own while the relay is out of reach, and when a command gives
up it is run again, as its message says.

What the client was told is recorded as it arrives (`Ledger`, by wrapping `RelayClient.request`,
the one door of every agent request): bytes appended at an offset, objects completed with a
size and SHA-256, manifest records stored, an authorization, a redemption, a receipt. After
each restart, and again when the iteration ends, every acknowledged fact must still hold in the
relay's database and object files (`check_facts`); the relay must still answer for them
(holdings); the audit chain must verify; a spent code must stay spent (a second redemption
with another redemption id is refused); the study that arrives must be byte-identical to what
was sent; and no request may have been answered with a 5xx, nor any traceback logged.

Used by tests/integration/test_kill_harness.py (CI, at least 50 iterations) and
ops/bench_kill.py (1,000 as a benchmark). A failure names the seed and iteration to replay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import secrets
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from relay_harness import RECEIVER, SENDER, RelayProcess

from receiving_site import redeem as redeeming
from relay.sites import add_site
from relay.storage.audit_chain import RECORD_COLUMNS, SELECT_RECORDS, verify_audit_chain
from sending_site import push as pushing
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes import wire
from transfer_codes.phone import split_link
from transfer_codes.wire import b64encode_text

PHASES = ("upload", "authorization", "redemption", "download")
ITERATION_SECONDS = 600.0  # one transfer, kill and restart included
RERUN_SECONDS = 120.0  # how long a command is run again while the relay stays out of reach
# Relay settings for many transfers from one address in a short time: the guessing throttles
# would otherwise count the harness's deliberate second redemptions (refused, as they must be).
RELAY_TOML = """\
guess_limit_per_site = 1000000
guess_limit_per_address = 1000000
guess_limit_global = 1000000
max_open_transfers_per_site = 1000000
"""
LATER_STATES = {
    "authorized": {"authorized", "redeemed", "delivered"},
    "redeemed": {"redeemed", "delivered"},
    "delivered": {"delivered"},
}

T = TypeVar("T")

_OBJECT = re.compile(r"^/api/v1/transfers/(\w+)/objects/(\d+)(/complete)?$")
_BATCH = re.compile(r"^/api/v1/transfers/(\w+)/objects$")
_RECORD = re.compile(r"^/api/v1/transfers/(\w+)/manifest/(\d+)$")
_RECEIPT = re.compile(r"^/api/v1/transfers/(\w+)/receipt$")


class HarnessFailure(AssertionError):
    """An invariant did not hold (or the transfer could not finish)."""


@dataclass
class Ledger:
    """What the relay acknowledged to the client (a 2xx answer received), per transfer."""

    segments: list[tuple[str, int, int, bytes]] = field(default_factory=list)  # tid, idx, at
    completed: dict[tuple[str, int], tuple[int, str]] = field(default_factory=dict)
    records: dict[tuple[str, int], bytes] = field(default_factory=dict)
    authorized: set[str] = field(default_factory=set)
    redeemed: dict[str, dict[str, Any]] = field(default_factory=dict)  # tid: request body
    delivered: set[str] = field(default_factory=set)
    server_errors: list[str] = field(default_factory=list)
    in_flight: int = 0
    phase: str = ""  # the phase the client is in
    request_times: dict[str, list[float]] = field(default_factory=dict)  # phase: seconds each
    on_request: Callable[[], None] | None = None  # told as each request starts

    @contextmanager
    def request(self) -> Iterator[None]:
        """One request in flight, timed."""
        phase, began = self.phase, time.monotonic()
        self.in_flight += 1
        if self.on_request is not None:
            self.on_request()
        try:
            yield
        finally:
            self.in_flight -= 1
            self.request_times.setdefault(phase, []).append(time.monotonic() - began)

    def acknowledged(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        data: Any,
        headers: dict[str, str],
        answer: Any,
    ) -> None:
        if match := _OBJECT.match(path):
            key = (match.group(1), int(match.group(2)))
            if method == "PATCH" and isinstance(data, bytes):
                self.segments.append((*key, int(headers[wire.UPLOAD_OFFSET]), data))
                if answer.get("complete") and wire.UPLOAD_SHA256 in headers:
                    size = int(headers[wire.UPLOAD_LENGTH])
                    self.completed[key] = (size, headers[wire.UPLOAD_SHA256])
            elif method == "POST" and match.group(3) and body is not None:
                self.completed[key] = (int(body["size"]), str(body["sha256"]))
        elif (match := _BATCH.match(path)) and method == "POST" and isinstance(data, bytes):
            for index, sealed, sha256 in _batch_objects(data):
                self.segments.append((match.group(1), index, 0, sealed))
                self.completed[(match.group(1), index)] = (len(sealed), sha256)
        elif (match := _RECORD.match(path)) and method == "PUT" and isinstance(data, bytes):
            self.records[(match.group(1), int(match.group(2)))] = data
        elif path == wire.AUTHORIZATIONS and answer.get("state") == "authorized":
            self.authorized.add(str(answer["transfer_id"]))
        elif path == wire.REDEMPTIONS and body is not None:
            self.redeemed[str(answer["transfer_id"])] = dict(body)
        elif (match := _RECEIPT.match(path)) and method == "POST":
            self.delivered.add(match.group(1))


def _batch_objects(body: bytes) -> list[tuple[int, bytes, str]]:
    """A batch upload's objects (`wire.pack_objects`) as (index, sealed bytes, sha256)."""
    at = wire.LENGTH_PREFIX + int.from_bytes(body[: wire.LENGTH_PREFIX], "big")
    objects = []
    for listed in json.loads(body[wire.LENGTH_PREFIX : at])["objects"]:
        objects.append((listed["index"], body[at : at + listed["size"]], listed["sha256"]))
        at += listed["size"]
    assert at == len(body)
    return objects


@contextmanager
def recording(ledger: Ledger) -> Iterator[None]:
    """Every `RelayClient` request in this process, while inside, is noted in `ledger`."""
    original = RelayClient.request

    async def request(self: RelayClient, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with ledger.request():
                answer = await original(self, method, path, **kwargs)
        except RelayRefused as e:
            if e.status >= 500:
                ledger.server_errors.append(f"{method} {path}: {e.status} {e.detail}")
            raise
        body, data, headers = kwargs.get("json"), kwargs.get("data"), kwargs.get("headers")
        ledger.acknowledged(method, path, body, data, headers or {}, answer)
        return answer

    original_stream = RelayClient.stream

    async def stream(self: RelayClient, path: str, start: int = 0) -> AsyncIterator[bytes]:
        try:
            with ledger.request():
                async for block in original_stream(self, path, start):
                    yield block
        except RelayRefused as e:
            if e.status >= 500:
                ledger.server_errors.append(f"GET {path}: {e.status} {e.detail}")
            raise

    RelayClient.request = request  # type: ignore[method-assign]
    RelayClient.stream = stream  # type: ignore[method-assign]
    try:
        yield
    finally:
        RelayClient.request = original  # type: ignore[method-assign]
        RelayClient.stream = original_stream  # type: ignore[method-assign]


# -- the relay's side ------------------------------------------------------------------------


def _query(data_dir: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(data_dir / "relay.sqlite3", timeout=30)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        return list(db.execute(sql, args).fetchall())
    finally:
        db.close()


def object_path(data_dir: Path, transfer_id: str, index: int) -> Path:
    return data_dir / "objects" / transfer_id / f"{index:08d}.sealed"


def check_facts(data_dir: Path, ledger: Ledger) -> None:
    """Every fact in `ledger` holds in the relay's database and object files."""
    for tid, idx, at, data in list(ledger.segments):
        rows = _query(
            data_dir,
            "SELECT durable_offset FROM objects WHERE transfer_id = ? AND idx = ?",
            tid,
            idx,
        )
        if not rows:
            raise HarnessFailure(f"object {idx} of {tid}: acknowledged bytes, but no record")
        if rows[0][0] < at + len(data):
            raise HarnessFailure(
                f"object {idx} of {tid}: the relay holds {rows[0][0]} bytes, but had "
                f"acknowledged {at + len(data)}"
            )
        with object_path(data_dir, tid, idx).open("rb") as f:
            f.seek(at)
            if f.read(len(data)) != data:
                raise HarnessFailure(
                    f"object {idx} of {tid}: acknowledged bytes {at}..{at + len(data)} changed"
                )
    for (tid, idx), (size, sha) in list(ledger.completed.items()):
        rows = _query(
            data_dir,
            "SELECT complete, size, sha256 FROM objects WHERE transfer_id = ? AND idx = ?",
            tid,
            idx,
        )
        if not rows or tuple(rows[0]) != (1, size, sha):
            raise HarnessFailure(
                f"object {idx} of {tid} was acknowledged complete ({size} bytes, {sha}); "
                f"the relay's record is {rows[0] if rows else None}"
            )
        path = object_path(data_dir, tid, idx)
        if path.stat().st_size != size or _sha256(path) != sha:
            raise HarnessFailure(f"object {idx} of {tid}: the complete file changed on disk")
    for (tid, seq), record in list(ledger.records.items()):
        rows = _query(
            data_dir,
            "SELECT record FROM manifest_records WHERE transfer_id = ? AND seq = ?",
            tid,
            seq,
        )
        if not rows or bytes(rows[0][0]) != record:
            raise HarnessFailure(f"manifest record {seq} of {tid} was acknowledged, now lost")
    for fact, tids in (
        ("authorized", ledger.authorized),
        ("redeemed", set(ledger.redeemed)),
        ("delivered", ledger.delivered),
    ):
        for tid in list(tids):
            rows = _query(data_dir, "SELECT state FROM transfers WHERE id = ?", tid)
            if not rows or rows[0][0] not in LATER_STATES[fact]:
                raise HarnessFailure(
                    f"transfer {tid} was acknowledged {fact}; it is now "
                    f"{rows[0][0] if rows else 'gone'}"
                )
    check_audit_chain(data_dir)


def check_audit_chain(data_dir: Path) -> None:
    rows = _query(data_dir, SELECT_RECORDS)
    findings = verify_audit_chain([dict(zip(RECORD_COLUMNS, r, strict=True)) for r in rows])
    if findings:
        raise HarnessFailure(
            "the audit chain does not verify: " + "; ".join(f.message for f in findings[:3])
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- one iteration -------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: in `phase`, `delay` seconds after it began ("timer"), or `delay` seconds
    after its `request`-th request to the relay began ("request")."""

    phase: str
    mode: str  # "timer" or "request"
    delay: float
    request: int = 0

    def describe(self) -> str:
        if self.mode == "timer":
            return f"{self.phase}, {self.delay * 1000:.1f} ms in"
        return f"{self.phase}, {self.delay * 1000:.2f} ms into request {self.request}"


@dataclass(frozen=True)
class Outcome:
    iteration: int
    point: KillPoint
    killed: bool  # False only if the iteration failed before its phase
    mid_request: bool  # a request of the client's was in flight when the relay died
    at_end: bool  # the phase ended before its kill point: killed as it ended
    reruns: int  # commands run again after they gave up
    failure: str = ""


@dataclass
class Killer:
    """SIGKILLs the relay once, at `point`, then starts it again and checks the acknowledged
    facts against what it holds after the restart."""

    relay: RelayProcess
    ledger: Ledger
    point: KillPoint
    handle: asyncio.TimerHandle | None = None
    restarted: asyncio.Task[None] | None = None
    killed: bool = False
    mid_request: bool = False
    at_end: bool = False  # killed only as the phase ended
    requests: int = 0

    def arm(self, phase: str) -> None:
        self.ledger.phase = phase
        if phase != self.point.phase or self.killed:
            return
        if self.point.mode == "timer":
            self._at(self.point.delay)
        else:
            self.ledger.on_request = self._request_began

    def disarm(self, phase: str) -> None:
        """The phase ended: a kill not yet made is made now, between its last answer and the
        next phase (the phase went faster than measured, or its last answer came first)."""
        if phase == self.point.phase and not self.killed:
            self.cancel()
            self.at_end = True
            self._kill()

    def cancel(self) -> None:
        self.ledger.on_request = None
        if self.handle is not None:
            self.handle.cancel()

    def _request_began(self) -> None:
        self.requests += 1
        if self.requests == self.point.request:
            self.ledger.on_request = None
            self._at(self.point.delay)

    def _at(self, delay: float) -> None:
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(delay, self._kill)

    def _kill(self) -> None:
        self.killed = True
        self.mid_request = self.ledger.in_flight > 0
        self.relay.kill()
        self.restarted = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        await asyncio.to_thread(self.relay.start)
        check_facts(self.relay.data_dir, self.ledger)

    async def settled(self) -> None:
        if self.restarted is not None:
            await self.restarted


@dataclass
class Harness:
    """A relay process on one data directory, a study, and the sites' credentials."""

    root: Path
    relay: RelayProcess
    sender_credential: str
    receiver_credential: str
    study: Path
    originals: list[str]  # the SHA-256 of every file of the study, sorted
    durations: dict[str, float] = field(default_factory=dict)  # phase: seconds
    requests: dict[str, int] = field(default_factory=dict)  # phase: requests to the relay
    request_time: dict[str, float] = field(default_factory=dict)  # phase: the median, seconds
    log_mark: int = 0

    @classmethod
    async def create(cls, root: Path, *, instances: int = 3) -> Harness:
        data = root / "relay-data"
        data.mkdir(parents=True)
        (data / "relay.toml").write_text(RELAY_TOML, encoding="utf-8")
        er = await add_site(data, SENDER, "sending", "St. Mary's Emergency Department")
        tc = await add_site(data, RECEIVER, "receiving", "County Level I Trauma Center")
        # Small slices, and one larger one whose upload and download take a little longer.
        files = make_ct_study(root / "study" / "a", instances, rows=32, columns=32, seed=7)
        files += make_ct_study(
            root / "study" / "b", 1, rows=256, columns=256, seed=7, series_number=2
        )
        relay = RelayProcess(data, root / "relay.log")
        await asyncio.to_thread(relay.start)
        return cls(
            root,
            relay,
            er.credential,
            tc.credential,
            root / "study",
            sorted(_sha256(f) for f in files),
        )

    def stop(self) -> None:
        self.relay.stop()

    async def calibrate(self, runs: int = 2) -> None:
        """Measure each phase without a kill (`runs` transfers): its duration (the longest),
        its number of requests to the relay (the fewest) and their median duration; kill
        points are drawn within them."""
        times: dict[str, list[float]] = {}
        for n in range(runs):
            timings: dict[str, float] = {}
            ledger = await self.plain(f"calibrate-{n}", timings)
            for phase, seconds in timings.items():
                self.durations[phase] = max(self.durations.get(phase, 0.0), seconds)
                made = ledger.request_times.get(phase, [])
                self.requests[phase] = min(self.requests.get(phase, len(made)), len(made))
                times.setdefault(phase, []).extend(made)
        for phase, seconds in times.items():
            self.request_time[phase] = statistics.median(seconds) if seconds else 0.0

    async def plain(self, name: str, timings: dict[str, float] | None = None) -> Ledger:
        """One transfer without a kill; what the relay acknowledged."""
        ledger = Ledger()
        with recording(ledger):
            await self._transfer(name, None, {} if timings is None else timings, ledger)
        return ledger

    def kill_point(self, seed: int, n: int) -> KillPoint:
        """Iteration `n` of the run with `seed`: its phase and kill point, drawn from both (so
        one iteration can be replayed alone). Half the kills come at a random moment of the
        phase, half at a random moment of one of its requests (up to twice its median
        duration, so some land just after the relay answered). A kill point the phase does
        not reach is taken as it ends (`Killer.disarm`)."""
        rng = random.Random(f"{seed}/{n}")
        phase = rng.choice(PHASES)
        if rng.random() < 0.5 or not self.requests.get(phase):
            return KillPoint(phase, "timer", rng.uniform(0.0, self.durations[phase]))
        request = rng.randint(1, self.requests[phase])
        return KillPoint(phase, "request", rng.uniform(0.0, 2 * self.request_time[phase]), request)

    async def iteration(self, n: int, point: KillPoint) -> Outcome:
        """One transfer, the relay killed at `point` and restarted; what was seen."""
        ledger = Ledger()
        killer = Killer(self.relay, ledger, point)
        reruns: list[int] = [0]
        failure = ""
        self.log_mark = self.relay.log_file.stat().st_size
        try:
            with recording(ledger):
                transfer = self._transfer(f"it-{n}", killer, {}, ledger, reruns)
                await asyncio.wait_for(transfer, ITERATION_SECONDS)
            await killer.settled()
            check_facts(self.relay.data_dir, ledger)
            await self.spent_stays_spent(ledger)
            self._no_server_error(ledger)
        except TimeoutError:
            failure = f"the transfer did not finish in {ITERATION_SECONDS:g} s"
        except (HarnessFailure, AssertionError) as e:
            failure = str(e) or type(e).__name__
        except Exception as e:  # any other error is a failure to report
            failure = f"{type(e).__name__}: {e}"
        finally:
            killer.cancel()
            try:
                await killer.settled()
            except Exception as e:  # a restart check that failed
                failure = failure or f"after the restart: {type(e).__name__}: {e}"
            if self.relay.proc is None or self.relay.proc.poll() is not None:
                await asyncio.to_thread(self.relay.start)
        return Outcome(
            n, point, killer.killed, killer.mid_request, killer.at_end, reruns[0], failure
        )

    async def _transfer(
        self,
        name: str,
        killer: Killer | None,
        timings: dict[str, float],
        ledger: Ledger | None = None,
        reruns: list[int] | None = None,
    ) -> None:
        """Push, authorize, redeem into a folder; check the folder holds the study."""
        work = self.root / name
        work.mkdir()
        counter = reruns if reruns is not None else [0]

        def phase_began(phase: str) -> float:
            if ledger is not None:
                ledger.phase = phase
            if killer is not None:
                killer.arm(phase)
            return time.monotonic()

        def phase_ended(phase: str, began: float) -> None:
            if killer is not None:
                killer.disarm(phase)
            timings[phase] = time.monotonic() - began

        began = phase_began("upload")
        result = await _again(
            counter,
            lambda: pushing.push(
                pushing.PushRequest(
                    paths=[self.study],
                    relay=self.relay.url,
                    recipient=RECEIVER,
                    credential=self.sender_credential,
                    state_dir=work / "er-state",
                ),
                lambda event: None,
            ),
        )
        phase_ended("upload", began)
        ready = result.ready

        began = phase_began("authorization")
        token, _phone_key = split_link(ready.authorization_url)
        async with RelayClient(self.relay.url, None) as phone:
            answer = await _again(counter, lambda: phone.authorize(token))
        if answer["state"] != "authorized":
            raise HarnessFailure(f"the authorization was answered {answer}")
        phase_ended("authorization", began)

        began = phase_began("redemption")
        download_began: list[float] = []

        def on_event(event: object) -> None:
            if isinstance(event, redeeming.Unlocked) and not download_began:
                phase_ended("redemption", began)
                download_began.append(phase_began("download"))

        out = work / "out"
        await _again(
            counter,
            lambda: redeeming.redeem(
                redeeming.RedeemRequest(
                    relay=self.relay.url,
                    credential=self.receiver_credential,
                    state_dir=work / "tc-state",
                    secret=ready.code,
                    out=out,
                ),
                on_event,
            ),
        )
        if not download_began:
            raise HarnessFailure("the redemption never unlocked the transfer")
        phase_ended("download", download_began[0])
        arrived = sorted(
            _sha256(p)
            for p in (out / ready.transfer_id).rglob("*")
            if p.is_file() and p.name != "DICOMDIR"
        )
        if arrived != self.originals:
            raise HarnessFailure(
                f"the study arrived altered: {len(arrived)} files, expected "
                f"{len(self.originals)}, or their contents differ"
            )

    async def spent_stays_spent(self, ledger: Ledger) -> None:
        """A second redemption of each spent code, with another redemption id, is refused."""
        async with RelayClient(self.relay.url, self.receiver_credential) as client:
            for tid, body in ledger.redeemed.items():
                again = {**body, "redemption_id": b64encode_text(secrets.token_bytes(32))}
                try:
                    await client.redeem(again)
                except RelayRefused as e:
                    if e.status >= 500:
                        raise HarnessFailure(f"a second redemption of {tid}: {e.status}") from e
                    continue
                raise HarnessFailure(f"the code of {tid} was redeemed a second time")

    def _no_server_error(self, ledger: Ledger) -> None:
        if ledger.server_errors:
            raise HarnessFailure("the relay answered 5xx: " + "; ".join(ledger.server_errors))
        with self.relay.log_file.open("rb") as f:
            f.seek(self.log_mark)
            log = f.read().decode(errors="replace")
        if "Traceback" in log or re.search(r'HTTP/1\.\d" 5\d\d ', log):
            raise HarnessFailure("the relay logged a traceback or a 5xx:\n" + log[-3000:])


async def _again(counter: list[int], run: Callable[[], Awaitable[T]]) -> T:
    """`run()` until it stops failing because the relay was out of reach (the agents retry
    for about half a minute themselves; then a person runs the same command again), for at
    most `RERUN_SECONDS`."""
    deadline = time.monotonic() + RERUN_SECONDS
    while True:
        try:
            return await run()
        except RelayUnreachable:
            if time.monotonic() > deadline:
                raise
            counter[0] += 1
            await asyncio.sleep(0.5)


# -- many iterations -------------------------------------------------------------------------


@dataclass
class Summary:
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failure]

    def describe(self) -> str:
        done = self.outcomes
        per_phase = Counter(o.point.phase for o in done)
        killed = Counter(o.point.phase for o in done if o.killed)
        mid = Counter(o.point.phase for o in done if o.mid_request)
        at_end = Counter(o.point.phase for o in done if o.at_end)
        lines = [
            f"seed {self.seed}: {len(done)} iterations in {self.seconds:.0f} s, "
            f"{sum(o.killed for o in done)} kills "
            f"({sum(o.mid_request for o in done)} with a request in flight), "
            f"{len(self.failures)} failures, {sum(o.reruns for o in done)} commands run again",
        ]
        for phase in PHASES:
            lines.append(
                f"  {phase:<14} {per_phase[phase]:>5} iterations {killed[phase]:>5} killed "
                f"{mid[phase]:>5} mid-request {at_end[phase]:>5} as it ended"
            )
        for o in self.failures[:20]:
            lines.append(
                f"  FAILED iteration {o.iteration} (killed at {o.point.describe()}; replay: "
                f"--seed {self.seed} --only {o.iteration}): {o.failure}"
            )
        return "\n".join(lines)


async def run(
    root: Path,
    iterations: int,
    seed: int,
    *,
    only: Sequence[int] = (),
    on_outcome: Callable[[Outcome], None] | None = None,
    stop_at_first_failure: bool = False,
) -> Summary:
    """Iterations 0 to `iterations` - 1 (or only those in `only`) of the run with `seed`, each
    with the kill point drawn for it; the summary of what was seen."""
    summary = Summary(seed)
    began = time.monotonic()
    harness = await Harness.create(root)
    try:
        await harness.calibrate()
        for n in only or range(iterations):
            outcome = await harness.iteration(n, harness.kill_point(seed, n))
            summary.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if outcome.failure and stop_at_first_failure:
                break
    finally:
        await asyncio.to_thread(harness.stop)
        summary.seconds = time.monotonic() - began
    return summary
