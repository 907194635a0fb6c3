"""Figure 2, over a WAN: needs `tc netem` (delay) in network namespaces. This machine's kernel
is asked first, in a namespace made and removed for the question; without netem the figure is
recorded as not measured, with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

NAMESPACE = f"trbench-probe-{os.getpid()}"


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
