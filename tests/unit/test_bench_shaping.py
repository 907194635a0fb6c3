"""The benchmark's user-space WAN link (`ops/bench/shaping.py`): its pacing and delay as pure
arithmetic on given times, and a connection carried through it intact, both ways, with the
half-close passed on. Nothing here is timed."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[2] / "ops" / "bench" / "shaping.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_shaping", PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


shaping = _load()


def test_a_full_bucket_lets_its_burst_through_at_once_then_paces_to_the_rate() -> None:
    bucket = shaping.TokenBucket(rate=1000.0, burst=100.0)
    assert bucket.departure(5.0, 100) == 5.0  # the burst
    assert bucket.departure(5.0, 100) == pytest.approx(5.1)  # then 100 bytes per 0.1 s
    assert bucket.departure(5.0, 500) == pytest.approx(5.6)
    assert bucket.departure(5.2, 10) == pytest.approx(5.61)  # queued behind what went before


def test_a_bucket_refills_while_idle_but_never_beyond_its_burst() -> None:
    bucket = shaping.TokenBucket(rate=1000.0, burst=100.0)
    assert bucket.departure(0.0, 300) == pytest.approx(0.2)
    assert bucket.departure(10.0, 100) == 10.0  # refilled: the burst again
    assert bucket.departure(10.0, 100) == pytest.approx(10.1)  # but only the burst


def test_a_long_stream_leaves_the_bucket_at_its_rate() -> None:
    bucket = shaping.TokenBucket(rate=12.5e6, burst=16384.0)
    last = 0.0
    for _ in range(1000):
        last = bucket.departure(0.0, 16384)
    assert last == pytest.approx((1000 * 16384 - 16384) / 12.5e6)


def test_a_lane_delivers_its_delay_after_the_bytes_leave_its_bucket() -> None:
    lane = shaping.Lane(shaping.TokenBucket(rate=1000.0, burst=0.0), delay=0.01)
    assert lane.delivery(1.0, 100) == pytest.approx(1.11)
    assert lane.delivery(1.0, 100) == pytest.approx(1.21)


def test_a_link_splits_its_round_trip_and_paces_each_way_on_its_own() -> None:
    link = shaping.Link("wan", 100e6, 0.020)
    assert link.out.delay == link.back.delay == pytest.approx(0.010)
    assert link.out.bucket.rate == link.back.bucket.rate == 12.5e6
    link.out.delivery(0.0, 10_000_000)  # a full lane out does not hold the way back
    assert link.back.delivery(0.0, 100) == pytest.approx(0.010)
    assert link.out is not link.back


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    """Echoes one connection until its half-close, then half-closes too."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_connection_through_a_link_arrives_intact_both_ways_and_half_closes() -> None:
    payload = os.urandom(3 * shaping.IN_FLIGHT + 12345)  # beyond what a lane holds: it pushes back
    listener, thread = _echo_server()
    with listener, shaping.Shaper() as shaper:
        port = shaper.forward(shaping.Link("fast", 2e9, 0.002), listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:

            def send() -> None:
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            echoed = bytearray()
            while data := client.recv(1 << 16):
                echoed += data
            sender.join()
        thread.join()
    assert bytes(echoed) == payload


def test_a_link_to_a_closed_port_closes_the_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        closed = taken.getsockname()[1]
    with shaping.Shaper() as shaper:
        port = shaper.forward(shaping.Link("nowhere", 1e9, 0.002), closed)
        with socket.create_connection(("127.0.0.1", port)) as client:
            assert client.recv(1) == b""
