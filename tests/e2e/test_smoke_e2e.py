"""The smallest end-to-end path in-process: push, authorize, redeem into a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_harness import RECEIVER, running_relay

from receiving_site.redeem import RedeemRequest, redeem
from sending_site.phone import token_from_link
from sending_site.push import PushRequest, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient


@pytest.mark.asyncio
async def test_push_authorize_redeem_to_folder(tmp_path: Path) -> None:
    files = make_ct_study(tmp_path / "study", 3)
    async with running_relay(tmp_path / "relay") as relay:
        events: list[object] = []
        result = await push(
            PushRequest(
                paths=[tmp_path / "study"],
                relay=relay.url,
                recipient=RECEIVER,
                credential=relay.sender_credential,
                state_dir=tmp_path / "er",
            ),
            events.append,
        )
        ready = next(e for e in events if isinstance(e, Ready))
        async with RelayClient(relay.url, None) as patient:
            await patient.request(
                "POST",
                "/api/v1/authorizations",
                json={"token": token_from_link(ready.authorization_url)},
            )
        delivered = await redeem(
            RedeemRequest(
                relay=relay.url,
                credential=relay.receiver_credential,
                state_dir=tmp_path / "tc",
                secret=ready.code,
                out=tmp_path / "out",
            ),
            lambda _: None,
        )
    assert result.instances == delivered.instances == 3
    out = sorted((tmp_path / "out" / ready.transfer_id).rglob("IM*"), key=lambda p: p.name)
    for original, received in zip(files, out, strict=True):
        a, b = original.read_bytes(), received.read_bytes()
        assert b[:128] == b"\x00" * 128
        assert a[128:] == b[128:]
