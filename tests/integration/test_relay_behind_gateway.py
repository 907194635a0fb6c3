"""A relay behind a proxy that answers a gateway's 502 of its own (nginx's HTML page) after the
relay did what was asked: the outcome is not known, so the site agents take it as a lost
answer (`RelayUnreachable`, not `unsent`), never as the relay's refusal. A push resumes past
it; a re-issue keeps its new code not confirmed (the relay holds it) instead of putting the old
one back. The relay's own 503 problem documents keep their meaning."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from faulty_link import FaultyLink, faulty_link
from relay_harness import RECEIVER, running_relay
from served_app import served

from sending_site import journal
from sending_site.push import PushRequest, push
from sending_site.synthetic import make_ct_study
from site_agent import retry
from site_agent.audit import FILE, verify_chain
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes import wire
from transfer_codes.wire import Problem
from trauma_relay.cli import main

pytestmark = pytest.mark.asyncio

NO_ANSWER = "new code may not have reached the relay, so it is not shown or printed"


def _bad_gateway_once(method: str, suffix: str) -> Callable[[web.Request], str | None]:
    left = ["bad-gateway"]

    def answer(request: web.Request) -> str | None:
        if request.method == method and request.path.endswith(suffix) and left:
            return left.pop()
        return None

    return answer


def _request(relay_url: str, credential: str, study: Path, state: Path) -> PushRequest:
    return PushRequest(
        paths=[study], relay=relay_url, recipient=RECEIVER, credential=credential, state_dir=state
    )


async def test_a_push_resumes_past_a_gateways_502(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's records reach the relay and the proxy answers 502: the push asks again
    (the relay takes the identical repeat) and finishes, as after a lost connection."""
    monkeypatch.setattr(retry, "DELAYS", (0.0,) * len(retry.DELAYS))
    make_ct_study(tmp_path / "study", 2, seed=6161)
    async with running_relay(tmp_path / "relay") as relay:
        link = FaultyLink(relay.url, _bad_gateway_once("POST", "/manifest"))
        async with faulty_link(link) as url:
            request = _request(url, relay.sender_credential, tmp_path / "study", tmp_path / "er")
            result = await push(request, lambda _: None)
        assert [what for what, _, _ in link.dropped] == ["bad-gateway"]
        async with RelayClient(relay.url, relay.sender_credential) as client:
            holdings = await client.holdings(result.ready.transfer_id)
    assert holdings.manifest_closed
    assert holdings.complete == {0, 1}


async def test_a_reissue_answered_502_by_the_gateway_keeps_its_code_not_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The relay took the new code and the proxy answered 502: the new code stays in the
    journal not confirmed (not the old one put back, which the relay no longer takes), nothing
    is shown, and the site's audit log says unknown."""
    make_ct_study(tmp_path / "study", 1, seed=6262)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        link = FaultyLink(relay.url, _bad_gateway_once("POST", "/reissue"))
        async with faulty_link(link) as url:
            request = _request(url, relay.sender_credential, tmp_path / "study", state)
            sent = (await push(request, lambda _: None)).ready
            argv = ["reissue", sent.transfer_id, "--state", str(state)]
            status = await asyncio.to_thread(main, [*argv, "--qr", str(tmp_path / "code.png")])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert [what for what, _, _ in link.dropped] == ["bad-gateway"]
    assert NO_ANSWER in err
    drawn = journal.load(state, sent.transfer_id)
    assert not drawn.code_confirmed
    assert drawn.code != sent.code.replace("-", "")
    log = state / "sending" / FILE
    verify_chain(log)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [
        (r["outcome"], r["detail"]["why"]) for r in records if r["action"] == "code-reissued"
    ] == [("unknown", "RelayUnreachable")]


async def test_the_relays_own_503_answers_keep_their_meaning() -> None:
    """A 503 problem document of the relay's is its refusal (the object store out of reach:
    `RelayRefused` with its code), its health's `disk-full` is a relay that is up; a 503 or
    504 of a proxy's own is an unknown outcome."""

    async def storage(_: web.Request) -> web.Response:
        body = {"type": wire.PROBLEM_TYPE + Problem.STORAGE_UNAVAILABLE, "detail": "Store down."}
        return web.json_response(body, status=503, content_type="application/problem+json")

    async def disk_full(_: web.Request) -> web.Response:
        return web.json_response({"status": "disk-full"}, status=503)

    async def proxy_busy(_: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>Service Temporarily Unavailable</html>")

    async def proxy_timeout(_: web.Request) -> web.Response:
        return web.json_response({"type": "about:blank", "status": 504}, status=504)

    app = web.Application()
    app.router.add_get("/storage", storage)
    app.router.add_get(wire.HEALTH, disk_full)
    app.router.add_get("/busy", proxy_busy)
    app.router.add_get("/timeout", proxy_timeout)
    async with served(app) as url, RelayClient(url, None) as client:
        with pytest.raises(RelayRefused) as refused:
            await client.request("GET", "/storage")
        assert (refused.value.status, refused.value.code) == (503, Problem.STORAGE_UNAVAILABLE)
        await client.health()
        for path in ("/busy", "/timeout"):
            with pytest.raises(RelayUnreachable) as unknown:
                await client.request("GET", path)
            assert not unknown.value.unsent
            assert "a proxy in front of it answered" in unknown.value.reason
