"""Figure 6: `count` transfers of ~20 MB at once through one relay (each a `push` and a
`redeem --out` running together), against one such transfer alone through the same relay:
every one must complete, and the aggregate throughput be at least that of the one alone.
`scale_out` (issue 12): the same transfers through two instances on PostgreSQL + S3 against
one on the embedded default."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peers.postgres import postgres_cluster
from peers.s3 import MotoServer
from processes import MachineBusy, Measured, tree_cpu_seconds
from sites import BenchRelay, redeemed_instances
from studies import Study

RUN_TIMEOUT = 3600.0


@dataclass
class CpuShare:
    """Where the machine's CPU went while transfers ran: seconds of CPU (all cores) by the
    relay instances, by the push and redeem processes, and by everything else (the database
    and object store when there are; any other job on the machine), over `wall_s`."""

    wall_s: float
    busy_s: float
    relays_s: float
    clients_s: float
    servers_s: dict[str, float] = field(default_factory=dict)  # the database, the object store

    @property
    def other_s(self) -> float:
        known = self.relays_s + self.clients_s + sum(self.servers_s.values())
        return max(0.0, self.busy_s - known)

    def as_dict(self) -> dict[str, object]:
        return {
            "wall_s": round(self.wall_s, 2),
            "cores_busy": round(self.busy_s / self.wall_s, 2) if self.wall_s else 0.0,
            "relays_cpu_s": round(self.relays_s, 2),
            "push_and_redeem_cpu_s": round(self.clients_s, 2),
            **{f"{name}_cpu_s": round(s, 2) for name, s in self.servers_s.items()},
            "other_cpu_s": round(self.other_s, 2),
        }


@dataclass
class ConcurrencyRun:
    alone_mb_s: float
    together_mb_s: float
    transfers: int
    completed: int
    relay_peak_rss_mb: float | None


def _transfers(
    relays: BenchRelay | list[BenchRelay],
    studies: list[Study],
    folder: Path,
    servers: dict[str, Callable[[], float]] | None = None,
) -> tuple[float, int, CpuShare]:
    """Seconds for all of them, how many delivered every image, and where the CPU went (of
    `servers` too: name, its CPU seconds so far). With several relays (instances of one),
    transfer i is pushed through relay i and redeemed through the next, round-robin."""
    ring = relays if isinstance(relays, list) else [relays]
    servers = servers or {}
    pushes: list[Measured] = []
    redeems: list[Measured] = []
    machine = MachineBusy().start()
    relays_before = sum(r.process.cpu_now() for r in ring)
    servers_before = {name: now() for name, now in servers.items()}
    try:
        start = time.perf_counter()
        for i, study in enumerate(studies):
            pushes.append(ring[i % len(ring)].push(f"push{i}", [study.dicom], folder))
        for i, push in enumerate(pushes):
            code = ring[i % len(ring)].authorized_code(push, timeout=RUN_TIMEOUT)
            through = ring[(i + 1) % len(ring)]
            redeems.append(through.redeem(f"redeem{i}", code, folder, out=folder / f"out{i}"))
        for proc in pushes + redeems:
            proc.wait(RUN_TIMEOUT)
        end = max(r.ended or 0.0 for r in redeems)
        completed = sum(
            1
            for r, s in zip(redeems, studies, strict=True)
            if r.returncode == 0 and redeemed_instances(r) == len(s.files())
        )
        relays_s = sum(r.process.cpu_now() for r in ring) - relays_before
        servers_s = {name: now() - servers_before[name] for name, now in servers.items()}
        machine.stop()
        clients_s = sum(p.cpu_s or 0.0 for p in pushes + redeems)
    finally:
        for proc in pushes + redeems:
            proc.kill()
    cpu = CpuShare(machine.wall_s, machine.busy_s, relays_s, clients_s, servers_s)
    return end - start, completed, cpu


def concurrency(studies: list[Study], work: Path) -> ConcurrencyRun:
    alone, *together = studies
    for study in studies:
        study.files()
    relay = BenchRelay(work / "concurrency").start()
    try:
        alone_s, alone_ok, _ = _transfers(relay, [alone], work / "concurrency" / "alone")
        if alone_ok != 1:
            raise RuntimeError("the transfer alone did not complete")
        together_s, completed, _ = _transfers(relay, together, work / "concurrency" / "together")
    finally:
        peak = relay.stop()
    total = sum(s.megabytes() for s in together)
    return ConcurrencyRun(
        alone.megabytes() / alone_s, total / together_s, len(together), completed, peak
    )


@dataclass
class ScaleOutRun:
    two_mb_s: float  # two instances on PostgreSQL + S3
    one_mb_s: float  # one instance on the embedded default
    transfers: int
    completed_two: int
    completed_one: int
    cpu_two: CpuShare
    cpu_one: CpuShare


def scale_out(studies: list[Study], work: Path, postgres_bin: Path) -> ScaleOutRun:
    """The same transfers at once through one relay on the embedded default (SQLite and
    files), then spread over two instances sharing a PostgreSQL database and an S3 bucket
    (moto's server): aggregate MB/s of each."""
    for study in studies:
        study.files()
    folder = work / "scale-out"
    one = BenchRelay(folder / "one").start()
    try:
        one_s, completed_one, cpu_one = _transfers(one, studies, folder / "one" / "transfers")
    finally:
        one.stop()
    moto = MotoServer(folder / "moto")
    with postgres_cluster(postgres_bin) as pg, moto as bucket:
        postmaster = int((pg.root / "cluster" / "postmaster.pid").read_text().split()[0])
        assert moto.proc is not None
        moto_pid = moto.proc.pid
        servers = {
            "postgresql": lambda: tree_cpu_seconds(postmaster),
            "moto_s3": lambda: tree_cpu_seconds(moto_pid),
        }
        settings: dict[str, object] = {
            "metadata_url": pg.url(),
            "metadata_password_file": pg.password_file,
            **bucket.settings("bench"),
        }
        a = BenchRelay(folder / "a", settings=settings).start()
        try:
            b = a.another_instance(folder / "b").start()
            try:
                two_s, completed_two, cpu_two = _transfers([a, b], studies, folder / "two", servers)
            finally:
                b.stop()
        finally:
            a.stop()
    total = sum(s.megabytes() for s in studies)
    return ScaleOutRun(
        total / two_s, total / one_s, len(studies), completed_two, completed_one, cpu_two, cpu_one
    )
