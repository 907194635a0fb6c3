"""The upload's own retries, against a scripted relay: a lost PATCH answer is followed by asking
the relay what it holds, an offset conflict by sending from the offset the relay names, and the
retries are bounded."""

from __future__ import annotations

from typing import Any

import pytest

from sending_site import errors
from sending_site.push import _Uploader
from site_agent import retry
from site_agent.client import Appended, Holdings, RelayRefused, RelayUnreachable
from transfer_codes import wire

TRANSFER = "t" * 24
BASE = f"/api/v1/transfers/{TRANSFER}/objects/3"


class ScriptedRelay:
    """Answers each call with the next scripted outcome (an exception to raise, or a value) and
    records `(who.what, args)`."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def _next(self) -> Any:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def append(
        self,
        transfer_id: str,
        index: int,
        data: bytes,
        offset: int,
        *,
        ends_at: int | None = None,
        sha256: str | None = None,
    ) -> Appended:
        """Recorded as the PATCH the real client sends (`site_agent.client.RelayClient.append`)."""
        headers = {"Upload-Offset": str(offset)}
        if ends_at is not None and sha256 is not None:
            headers |= {"Upload-Length": str(ends_at), "Upload-SHA256": sha256}
        path = wire.sealed_object(transfer_id, index)
        self.calls.append(("relay.request", ("PATCH", path, str(offset), len(data), headers)))
        answer = self._next()
        return Appended(int(answer["offset"]), bool(answer["complete"]))

    async def holdings(self, transfer_id: str) -> Holdings:
        self.calls.append(("relay.holdings", (transfer_id,)))
        return self._next()  # type: ignore[no-any-return]


def _lost() -> RelayUnreachable:
    return RelayUnreachable("The relay could not be reached (ServerDisconnectedError).")


def _conflict(offset: int) -> RelayRefused:
    detail = f"The relay holds {offset} bytes of this object; resume from there."
    return RelayRefused(409, "upload-offset-mismatch", detail, {"offset": offset})


def _holding(offset: int, complete: bool = False) -> Holdings:
    return Holdings({3: offset}, {3} if complete else set(), 0, False)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "DELAYS", (0.0,) * len(retry.DELAYS))


def _uploader(relay: ScriptedRelay) -> _Uploader:
    return _Uploader(relay, TRANSFER, b"k" * 32, lambda _: None, 0, 1)  # type: ignore[arg-type]


def _sent(relay: ScriptedRelay) -> list[tuple[str, tuple[object, ...]]]:
    """The calls without the full headers."""
    return [(who, args[:4]) if who == "relay.request" else (who, args) for who, args in relay.calls]


@pytest.mark.asyncio
async def test_a_lost_answer_is_followed_by_asking_what_the_relay_holds() -> None:
    segment = bytes(1000)
    relay = ScriptedRelay(_lost(), _holding(600), {"offset": 1100, "complete": False})
    assert await _uploader(relay)._append(3, 100, segment, 100, None) == (1100, False)
    assert _sent(relay) == [
        ("relay.request", ("PATCH", BASE, "100", 1000)),
        ("relay.holdings", (TRANSFER,)),
        ("relay.request", ("PATCH", BASE, "600", 500)),
    ]


@pytest.mark.asyncio
async def test_a_lost_answer_to_the_completing_patch_finds_the_object_complete() -> None:
    relay = ScriptedRelay(_lost(), _lost(), _holding(1000, complete=True))
    assert await _uploader(relay)._append(3, 0, bytes(1000), 0, "ab" * 32) == (1000, True)
    # Never sent again blindly: a repeat of a completing PATCH would be refused.
    assert _sent(relay) == [
        ("relay.request", ("PATCH", BASE, "0", 1000)),
        ("relay.holdings", (TRANSFER,)),
        ("relay.holdings", (TRANSFER,)),
    ]


@pytest.mark.asyncio
async def test_an_offset_conflict_continues_from_the_relays_offset() -> None:
    relay = ScriptedRelay(_conflict(700), {"offset": 1000, "complete": True})
    assert await _uploader(relay)._append(3, 0, bytes(1000), 200, "ab" * 32) == (1000, True)
    assert _sent(relay) == [
        ("relay.request", ("PATCH", BASE, "200", 800)),
        ("relay.request", ("PATCH", BASE, "700", 300)),
    ]
    headers = relay.calls[1][1][4]
    assert isinstance(headers, dict)
    assert headers["Upload-Length"] == "1000"


@pytest.mark.asyncio
async def test_an_offset_past_the_segment_moves_on() -> None:
    relay = ScriptedRelay(_conflict(5000))
    assert await _uploader(relay)._append(3, 0, bytes(1000), 0, None) == (5000, False)


@pytest.mark.asyncio
async def test_the_relay_holding_less_than_the_stream_has_passed_stops_the_run() -> None:
    relay = ScriptedRelay(_conflict(10))
    with pytest.raises(errors.UploadInterrupted, match="Run the same command again"):
        await _uploader(relay)._append(3, 100, bytes(1000), 100, None)


@pytest.mark.asyncio
async def test_retries_are_bounded() -> None:
    relay = ScriptedRelay(*([_lost()] * 6))
    with pytest.raises(RelayUnreachable):
        await _uploader(relay)._append(3, 0, bytes(10), 0, None)
    assert _sent(relay) == [
        ("relay.request", ("PATCH", BASE, "0", 10)),
        *[("relay.holdings", (TRANSFER,))] * 5,
    ]


@pytest.mark.asyncio
async def test_other_refusals_are_not_retried() -> None:
    relay = ScriptedRelay(RelayRefused(413, "too-large", "Too large.", {}))
    with pytest.raises(RelayRefused):
        await _uploader(relay)._append(3, 0, bytes(10), 0, None)
    assert len(relay.calls) == 1


@pytest.mark.asyncio
async def test_retrying_gives_up_after_six_attempts() -> None:
    calls = 0

    async def unreachable() -> None:
        nonlocal calls
        calls += 1
        raise _lost()

    with pytest.raises(RelayUnreachable):
        await retry.retrying(unreachable)
    assert calls == 6


@pytest.mark.asyncio
async def test_retrying_returns_once_the_relay_answers() -> None:
    outcomes: list[object] = [_lost(), _lost(), "answer"]

    async def flaky() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await retry.retrying(flaky) == "answer"
