"""End-to-end benchmark: a synthetic CT through trauma-relay into Orthanc, against DCMTK's
storescu sending the same files straight into an identical Orthanc, measured in the same run.

    .venv/bin/python ops/bench_transfer.py [--instances 200] [--size 512]

Prints seconds and MB/s for: storescu → Orthanc (the peer baseline, no relay, no encryption),
`trauma-relay push` (validate, seal, upload), `trauma-relay redeem` (redeem, download, open,
verify, C-STORE), and the ratio of the relay path to the baseline. Needs Debian's orthanc and
dcmtk. Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from peers import PEER_ENVIRONMENT, find_peer  # noqa: E402
from peers.orthanc import OrthancServer  # noqa: E402
from relay_harness import RECEIVER, RelayProcess  # noqa: E402

from relay.sites import add_site  # noqa: E402
from sending_site.synthetic import make_ct_study  # noqa: E402

CLI = [sys.executable, "-m", "trauma_relay.cli"]


def timed(argv: list[str], *, env: dict[str, str], stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="rows and columns per slice")
    args = parser.parse_args()
    import asyncio

    env = {**os.environ, **PEER_ENVIRONMENT}
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        work = Path(tmp)
        files = make_ct_study(work / "study", args.instances, rows=args.size, columns=args.size)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"study: {len(files)} CT slices {args.size}x{args.size}, {total_mb:.1f} MB")

        with OrthancServer(work / "orthanc-direct") as direct:
            baseline, _ = timed(
                [
                    find_peer("storescu") or "storescu",
                    "-aec",
                    direct.ae_title,
                    "+sd",
                    "-nh",
                    "127.0.0.1",
                    str(direct.dicom_port),
                    str(work / "study"),
                ],
                env=env,
            )
            assert len(direct.instances()) == len(files)

        data = work / "relay-data"
        er = asyncio.run(add_site(data, "bench-er", "sending", "Bench ER"))
        tc = asyncio.run(add_site(data, RECEIVER, "receiving", "Bench Trauma"))
        relay = RelayProcess(data, work / "relay.log")
        relay.start()
        try:
            with OrthancServer(work / "orthanc-relay") as target:
                push_s, out = timed(
                    [
                        *CLI,
                        "push",
                        str(work / "study"),
                        "--relay",
                        relay.url,
                        "--to",
                        RECEIVER,
                        "--state",
                        str(work / "er-state"),
                        "--qr",
                        str(work / "qr.png"),
                        "--json",
                        "--yes",
                    ],
                    env={**env, "TRAUMA_RELAY_CREDENTIAL": er.credential},
                )
                pushed = json.loads(out)
                token = pushed["authorization_url"].split("#", 1)[1].split(".", 1)[0]
                request = urllib.request.Request(  # noqa: S310 - our own loopback relay
                    relay.url + "/api/v1/authorizations",
                    data=json.dumps({"token": token}).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - as above
                    pass
                redeem_s, _ = timed(
                    [
                        *CLI,
                        "redeem",
                        "--relay",
                        relay.url,
                        "--state",
                        str(work / "tc-state"),
                        "--pacs",
                        f"{target.ae_title}@127.0.0.1:{target.dicom_port}",
                        "--yes",
                        "--json",
                    ],
                    env={**env, "TRAUMA_RELAY_CREDENTIAL": tc.credential},
                    stdin=pushed["code"] + "\n",
                )
                assert len(target.instances()) == len(files)
        finally:
            relay.stop()

    relay_total = push_s + redeem_s
    print(f"storescu -> Orthanc (baseline):    {baseline:7.2f} s  {total_mb / baseline:7.1f} MB/s")
    print(f"trauma-relay push (seal, upload):   {push_s:7.2f} s  {total_mb / push_s:7.1f} MB/s")
    print(
        f"trauma-relay redeem (verify, store): {redeem_s:6.2f} s  {total_mb / redeem_s:7.1f} MB/s"
    )
    print(f"relay path / baseline:              {relay_total / baseline:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
