"""`trauma-relay demo`: a whole transfer on this machine with no set-up, explained step by step.

Starts a relay on a free port with a temporary data directory, registers an ER and a trauma
center, makes a synthetic CT study, pushes it, authorizes it as the patient would, redeems it
into a local folder, and shows that the relay never held a readable byte of it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiohttp import web

from relay import config as relay_config
from relay.app import make_app
from relay.sites import add_site
from site_agent.client import RelayClient


def _say(step: int, text: str) -> None:
    print(f"\n[{step}] {text}", flush=True)


def _occurs_in_tree(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def run_demo(instances: int = 20, keep: Path | None = None) -> int:
    from receiving_site.preview import describe
    from receiving_site.redeem import Preview, RedeemEvent, RedeemRequest, Unlocked, redeem
    from sending_site.phone import token_from_link
    from sending_site.push import Progress, PushRequest, Ready, push
    from sending_site.synthetic import make_ct_study

    with tempfile.TemporaryDirectory(prefix="trauma-relay-demo-") as tmp:
        root = keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = root / "relay-data"
        _say(1, f"Starting a relay (data in {data}).")
        config = relay_config.load(data, "127.0.0.1:0", environ={})
        runner = web.AppRunner(make_app(config), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        print(f"    relay listening on {url}")
        try:
            er = await add_site(data, "st-mary-er", "sending", "St. Mary's Emergency Department")
            tc = await add_site(data, "county-trauma", "receiving", "County Level I Trauma Center")
            _say(2, "Registered two sites, each with its own credential:")
            print(f"    sending:   {er.site.display_name} ({er.site.name})")
            print(f"    receiving: {tc.site.display_name} ({tc.site.name})")

            study = root / "er-study"
            files = make_ct_study(study, instances)
            _say(3, f"The ER has a CT study: {len(files)} images of DOE^JANE in {study}.")

            _say(4, "Pushing it: every image is encrypted here, then uploaded.")
            ready: list[Ready] = []

            def on_push(event: Ready | Progress) -> None:
                if isinstance(event, Ready):
                    ready.append(event)
                    print(f"    transfer {event.transfer_id}")
                    print(f"    code for the transfer sheet: {event.code}")
                    print(f"    patient authorization link:  {event.authorization_url}")

            result = await push(
                PushRequest(
                    paths=[study],
                    relay=url,
                    recipient=tc.site.name,
                    credential=er.credential,
                    state_dir=root / "er-state",
                ),
                on_push,
            )
            print(f"    uploaded {result.instances} images ({result.bytes / 1e6:.1f} MB)")

            _say(5, "The patient opens the link on their phone and authorizes the transfer.")
            token = token_from_link(ready[0].authorization_url)
            async with RelayClient(url, None) as patient:
                answer = await patient.authorize(token)
            print(f"    transfer is now {answer['state']}")

            _say(6, "The trauma center types the code and redeems it into its folder.")
            out = root / "trauma-center-inbox"

            def on_redeem(event: RedeemEvent) -> None:
                if isinstance(event, Unlocked):
                    print(f"    code accepted; study from {event.sender}")
                elif isinstance(event, Preview):
                    print("\n".join("    " + line for line in describe(event.summary)))

            delivered = await redeem(
                RedeemRequest(
                    relay=url,
                    credential=tc.credential,
                    state_dir=root / "tc-state",
                    secret=ready[0].code,
                    out=out,
                ),
                on_redeem,
            )
            print(
                f"    {delivered.instances} images verified and written to {delivered.destination}"
            )

            _say(7, "What the relay held, and what the ER sees now:")
            async with RelayClient(url, er.credential) as client:
                status = await client.status(ready[0].transfer_id)
            print(f"    state: {status['state']}; receipt: {status['receipt']}")
            leaks = _occurs_in_tree(data, b"DOE^JANE")
            print(
                "    the patient's name occurs in the relay's data: "
                + ("YES: " + ", ".join(map(str, leaks)) if leaks else "nowhere (ciphertext only)")
            )
            print("\nDone. Try `trauma-relay --help` for the real commands.")
            return 1 if leaks else 0
        finally:
            await runner.cleanup()
