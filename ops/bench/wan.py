"""Figure 2, over a WAN: PACS to PACS (figure 1's path, `pacs.pacs_to_pacs`) with the sending
agent's and the receiving agent's relay connections each through a link of 100 Mbit/s and
20 ms RTT, against Orthanc A sending the same study to Orthanc B through one such link.

The issue asks for network namespaces joined by links shaped with `tc netem`. This machine's
kernel has no `sch_netem` (nor `fq`, the other qdisc that can hold a packet back), so the links
are made in user space (`shaping.py`: a TCP proxy that paces each direction with a token bucket
and delivers each byte 10 ms after it leaves it). The kernel is asked first, in a namespace made
and removed for the question, and its answer is written in the figure's details."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pacs import LINKS, PacsRun, pacs_to_pacs
from shaping import Link, LinkCheck, Shaper, check
from studies import Study

NAMESPACE = f"trbench-probe-{os.getpid()}"
RATE_BITS = 100e6
RTT = 0.020


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def netem_missing() -> str | None:
    """Why netem cannot shape a link here, or None when it can."""
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"iproute2's `{tool}` is not installed"
    made = _run("ip", "netns", "add", NAMESPACE)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    try:
        shaped = _run(
            "ip", "netns", "exec", NAMESPACE,
            "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "10ms", "rate", "100mbit",
        )  # fmt: skip
        if shaped.returncode != 0:
            return (
                f"`tc qdisc add ... netem delay 10ms rate 100mbit` fails on this kernel "
                f"({os.uname().release}): {shaped.stderr.strip()} (no sch_netem module)"
            )
    finally:
        _run("ip", "netns", "del", NAMESPACE)
    return None


@dataclass
class WanRun:
    run: PacsRun
    link: str  # what each link is
    how: str  # how the links were made, and why so
    checked: LinkCheck  # one link like them, measured before the run


def pacs_over_wan(study: Study, work: Path) -> WanRun:
    netem = netem_missing()
    why = (
        f"the kernel cannot delay packets: {netem}"
        if netem
        else "netem works here, but the suite's WAN links are the same user-space ones everywhere"
    )
    how = (
        "user-space TCP proxy (ops/bench/shaping.py): each direction paced by a token bucket, "
        f"each byte delivered {RTT / 2 * 1e3:g} ms after it leaves it; {why}"
    )
    links = {name: Link(name, RATE_BITS, RTT) for name in LINKS}
    with Shaper() as shaper:
        checked = check(shaper, links["direct"])
        forwarded: dict[tuple[str, int], int] = {}

        def route(link: str, port: int) -> int:
            if (link, port) not in forwarded:
                forwarded[link, port] = shaper.forward(links[link], port)
            return forwarded[link, port]

        run = pacs_to_pacs(study, work, route, also_cstore=False)
    return WanRun(run, links["direct"].describe(), how, checked)
