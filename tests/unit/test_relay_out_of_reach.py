"""Why the relay could not be reached, in words (never a library class name), and the retries:
spread over the time given, each wait announced before it starts."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest

from site_agent import retry, unreachable
from site_agent.client import RelayClient
from site_agent.errors import RelayUnreachable
from site_agent.unreachable import UNKNOWN, reason


def _caused_by(cause: BaseException) -> Exception:
    """An error as a library raises it on top of `cause` (`raise ... from cause`)."""
    try:
        try:
            raise cause
        except BaseException as e:
            raise aiohttp.ClientConnectionError("wrapped") from e
    except aiohttp.ClientConnectionError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "name not found"),
        (TimeoutError(), "timed out (no answer)"),
        (aiohttp.ConnectionTimeoutError(), "timed out (no answer)"),
        (ConnectionResetError(104, "reset"), "the connection was reset"),
        (aiohttp.ServerDisconnectedError(), "the relay closed the connection before answering"),
        (aiohttp.ClientPayloadError("cut"), "the answer was cut short"),
        (ssl.SSLCertVerificationError("bad"), "its security certificate was not accepted"),
        (ssl.SSLError("handshake"), "the secure connection could not be set up"),
        (OSError(101, "Network is unreachable"), "the network is unreachable"),
        (OSError(113, "No route to host"), "the relay's computer is unreachable"),
        (ValueError("anything else"), UNKNOWN),
    ],
)
def test_failures_in_words(error: BaseException, words: str) -> None:
    assert reason(error).startswith(words)
    assert reason(_caused_by(error)).startswith(words)


def test_backoff_fits_the_time_given() -> None:
    assert retry.backoff(0) == ()
    assert retry.backoff(3) == (1.0, 2.0)
    assert retry.backoff(120) == (1.0, 2.0, 4.0, 8.0, *(15.0,) * 7)
    assert sum(retry.backoff(200)) <= 200
    assert max(retry.backoff(1000)) == retry.LONGEST_WAIT


@pytest.mark.asyncio
async def test_each_wait_is_announced_before_it_starts() -> None:
    heard: list[tuple[str, tuple[object, ...]]] = []
    outcomes: list[object] = [
        RelayUnreachable("x", "connection refused"),
        RelayUnreachable("x", "timed out"),
        "answer",
    ]

    async def call() -> object:
        heard.append(("relay.directory", ()))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def on_wait(delay: float, e: RelayUnreachable) -> None:
        heard.append(("cli.say_retrying", (delay, e.reason)))

    assert await retry.retrying(call, on_wait, (0.0, 0.0, 0.0)) == "answer"
    assert heard == [
        ("relay.directory", ()),
        ("cli.say_retrying", (0.0, "connection refused")),
        ("relay.directory", ()),
        ("cli.say_retrying", (0.0, "timed out")),
        ("relay.directory", ()),
    ]


@pytest.mark.asyncio
async def test_no_waits_means_one_try() -> None:
    async def call() -> None:
        raise RelayUnreachable("The relay could not be reached.", "connection refused")

    with pytest.raises(RelayUnreachable):
        await retry.retrying(call, lambda *_: pytest.fail("no wait expected"), ())


@pytest.mark.asyncio
async def test_a_relay_out_of_reach_is_told_to_a_console_without_a_command_to_run() -> None:
    """The command line is told to run the same command again; a console, where staff press a
    button or enter the code again, is not told to run a command (the trauma console showed "run the
    same command again" under its code field)."""
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with RelayClient(f"http://127.0.0.1:{port}", "credential") as client:
        with pytest.raises(RelayUnreachable) as raised:
            await client.health()
    assert "run the same command again" in raised.value.detail
    assert raised.value.for_console.startswith(f"The relay at http://127.0.0.1:{port} could not")
    assert "connection refused" in raised.value.for_console
    assert "command" not in raised.value.for_console


@pytest.mark.asyncio
async def test_a_request_not_safe_to_repeat_is_sent_again_only_while_it_never_left() -> None:
    """Creating a transfer: tried again while no connection could be opened (the relay cannot
    have made it), not once the request may have reached the relay (its answer lost)."""
    heard: list[tuple[str, tuple[object, ...]]] = []
    outcomes: list[object] = [
        RelayUnreachable("x", "connection refused", unsent=True),
        RelayUnreachable("x", "the relay closed the connection before answering"),
        "created",
    ]

    async def call() -> object:
        heard.append(("relay.create_transfer", ()))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def on_wait(delay: float, e: RelayUnreachable) -> None:
        heard.append(("cli.say_retrying", (delay, e.reason)))

    with pytest.raises(RelayUnreachable, match="x") as raised:
        await retry.retrying(call, on_wait, (0.0, 0.0, 0.0), unsent_only=True)
    assert not raised.value.unsent
    assert heard == [
        ("relay.create_transfer", ()),
        ("cli.say_retrying", (0.0, "connection refused")),
        ("relay.create_transfer", ()),
    ]


@pytest.mark.parametrize(
    ("error", "unsent"),
    [
        (aiohttp.ConnectionTimeoutError(), True),
        (aiohttp.ServerDisconnectedError(), False),
        (aiohttp.ClientPayloadError("cut"), False),
        (ConnectionResetError(104, "reset"), False),
        (TimeoutError(), False),  # reading the answer timed out: the request went
    ],
)
def test_only_a_connection_never_opened_is_unsent(error: BaseException, unsent: bool) -> None:
    assert unreachable.unsent(error) is unsent
    assert unreachable.unsent(_caused_by(error)) is unsent


@pytest.mark.asyncio
async def test_a_relay_nothing_answers_for_never_got_the_request() -> None:
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with RelayClient(f"http://127.0.0.1:{port}", "credential") as client:
        with pytest.raises(RelayUnreachable) as raised:
            await client.create_transfer("county-trauma", None)
    assert raised.value.unsent
