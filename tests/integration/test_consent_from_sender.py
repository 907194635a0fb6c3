"""End to end through the agents' own code: when the patient's authorization is posted from
the very machine the ER pushed from, the trauma center's redemption is told so, keeps it with
the key, and the command line says it with the preview. The relay listens on this machine's
network address (a loopback address tells nothing, so it is never flagged)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from relay_harness import RECEIVER, Relay, make_certificates, running_relay

from receiving_site.redeem import RedeemRequest, Unlocked, redeem
from relay.storage.sqlite import SqliteMetadata
from sending_site.decisions import Ready
from sending_site.push import PushRequest, push
from sending_site.synthetic import make_ct_study
from transfer_codes.phone import split_link


def _network_address() -> str | None:
    """This machine's address toward a network (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.asyncio
async def test_consent_from_the_er_machine_is_flagged_at_the_trauma_center(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = _network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    tls = make_certificates(tmp_path / "tls", ip=address)  # plain http:// would be refused
    monkeypatch.setenv("TRAUMA_RELAY_CA_FILE", str(tls / "ca.pem"))
    async with running_relay(
        tmp_path / "relay",
        host=address,
        tls_certificate=tls / "relay.pem",
        tls_key=tls / "relay-key.pem",
    ) as relay:
        make_ct_study(tmp_path / "study", 2)
        pushed: list[object] = []
        await push(
            PushRequest(
                paths=[tmp_path / "study"],
                relay=relay.url,
                recipient=RECEIVER,
                credential=relay.sender_credential,
                state_dir=tmp_path / "er",
            ),
            pushed.append,
        )
        (ready,) = [e for e in pushed if isinstance(e, Ready)]
        token, _key = split_link(ready.authorization_url)
        trusted = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        async with (
            aiohttp.ClientSession() as http,  # the ER's own browser, on its machine
            http.post(
                relay.url + "/api/v1/authorizations", json={"token": token}, ssl=trusted
            ) as answer,
        ):
            assert answer.status == 200
        events: list[object] = []
        request = RedeemRequest(
            relay=relay.url,
            credential=relay.receiver_credential,
            state_dir=tmp_path / "tc",
            secret=ready.code,
            out=tmp_path / "out",
        )
        await redeem(request, events.append)
        actions = await _audited(relay)
    (unlocked,) = [e for e in events if isinstance(e, Unlocked)]
    assert unlocked.consent_from_sending_site is True
    assert actions.count("consent-from-sending-site") == 1


async def _audited(relay: Relay) -> list[str]:
    store = await SqliteMetadata.open(relay.data_dir / "relay.sqlite3")
    try:
        return [r["action"] for r in await store.audit_records()]
    finally:
        await store.close()
